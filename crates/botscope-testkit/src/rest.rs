//! The REST half of the fake Discord: a loopback HTTP server that twilight-http can talk to.
