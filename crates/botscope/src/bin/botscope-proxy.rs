//! `botscope-proxy`: the Discord REST proxy as a standalone process (under construction).

fn main() {
    std::process::exit(2);
}
