//! Operation and table of a SQL statement, read by a small lexer.
//!
//! [`classify`] reads the first statement of a SQL text and returns its operation (a closed
//! vocabulary of SQL keywords in upper case) and the table it works on. It skips comments
//! (`-- …`, `/* … */`, nested or not), string literals (`'…'` with `''` and backslash
//! escapes, PostgreSQL `$tag$…$tag$`), numbers and bind parameters, and strips the quotes of
//! quoted identifiers (`"…"`, `` `…` ``, `[…]`). Literals never become a label: a table is
//! always an identifier that follows a keyword such as `FROM`, `INTO`, `UPDATE` or `TABLE`.
//!
//! ```
//! use botscope_sqlx::sql::classify;
//!
//! let s = classify("/* report */ select name FROM public.users WHERE note = 'FROM secrets'");
//! assert_eq!((s.operation(), s.table()), ("SELECT", Some("public.users")));
//!
//! let s = classify("WITH recent AS (SELECT * FROM events) DELETE FROM \"Sessions\" WHERE id IN (SELECT id FROM recent)");
//! assert_eq!((s.operation(), s.table()), ("DELETE", Some("Sessions")));
//!
//! assert_eq!(classify("VACUUM").operation(), "OTHER");
//! ```
//!
//! # Operation vocabulary
//!
//! The SQL keyword in upper case, whatever case the statement used, as bun's `bunotel` and
//! OpenTelemetry's `db.operation.name` write it: `SELECT`, `INSERT` (also `REPLACE INTO`),
//! `UPDATE`, `DELETE`, `MERGE`, `BEGIN` (also `START TRANSACTION`), `COMMIT` (also `END`),
//! `ROLLBACK`, `SAVEPOINT`, `RELEASE`, `CREATE`, `ALTER`, `DROP`, `TRUNCATE`, `PRAGMA`, `SET`,
//! `SHOW`, `EXPLAIN`, `CALL`, and [`OTHER`] for anything else.
//!
//! # Table
//!
//! The table read by `SELECT … FROM` (the first table of the first `FROM` list of the
//! outermost query, its items and `JOIN`s in order: table-valued functions such as `UNNEST(…)`,
//! `generate_series(…)` or `json_each(…)` and subqueries are not tables; a list of functions
//! alone is [`FUNCTION_TABLE`], `other`), written by
//! `INSERT INTO`, `UPDATE`, `DELETE FROM`, `MERGE INTO`, or named by `CREATE`/`ALTER`/`DROP`/
//! `TRUNCATE TABLE` and `CREATE INDEX … ON`. Schema-qualified names keep their schema
//! (`public.users`); unquoted names are lowercased, quoted names keep their case. Statements
//! without a table (`SELECT 1`, `BEGIN`, `PRAGMA …`) have none. Names longer than
//! [`MAX_TABLE_LEN`] bytes count as none.

/// The longest table name kept, in bytes; longer names are dropped.
pub const MAX_TABLE_LEN: usize = 64;

/// The table of a `SELECT` whose `FROM` lists only table-valued functions
/// (`SELECT * FROM generate_series(1, 3)`): the label's overflow value, lower-case `other`.
pub const FUNCTION_TABLE: &str = "other";

/// The keywords that end a `FROM` list.
const FROM_ENDS: [&str; 12] = [
    "where",
    "group",
    "having",
    "window",
    "order",
    "limit",
    "offset",
    "fetch",
    "union",
    "intersect",
    "except",
    "returning",
];

/// The operation of a statement the lexer does not recognise (the `table` label's overflow,
/// from the table cap, stays lower-case `other`).
pub const OTHER: &str = "OTHER";

/// What [`classify`] read from a statement. See the [module docs](self).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Classified {
    operation: &'static str,
    table: Option<String>,
}

impl Classified {
    /// The operation: an upper-case SQL keyword from the documented vocabulary, or [`OTHER`].
    pub fn operation(&self) -> &'static str {
        self.operation
    }

    /// The table, if the statement names one.
    pub fn table(&self) -> Option<&str> {
        self.table.as_deref()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token<'a> {
    /// An unquoted identifier or keyword.
    Word(&'a str),
    /// A quoted identifier, quotes removed.
    Quoted(&'a str),
    /// A string, number or parameter: never read.
    Literal,
    Symbol(char),
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn new(src: &'a str) -> Self {
        Self { src, pos: 0 }
    }

    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_trivia(&mut self) {
        loop {
            let rest = self.rest();
            if rest.starts_with("--") {
                self.pos += rest.find('\n').unwrap_or(rest.len());
            } else if rest.starts_with("/*") {
                self.pos += 2;
                let mut depth = 1usize;
                while depth > 0 {
                    let rest = self.rest();
                    if rest.is_empty() {
                        break;
                    } else if rest.starts_with("*/") {
                        depth -= 1;
                        self.pos += 2;
                    } else if rest.starts_with("/*") {
                        depth += 1;
                        self.pos += 2;
                    } else {
                        self.bump();
                    }
                }
            } else if self.peek().is_some_and(char::is_whitespace) {
                self.bump();
            } else {
                return;
            }
        }
    }

    /// Skips a quoted run that started with `quote` (already consumed), honouring a doubled
    /// quote and, when `backslash`, backslash escapes. Returns the content.
    fn quoted(&mut self, quote: char, backslash: bool) -> &'a str {
        let start = self.pos;
        loop {
            match self.bump() {
                None => return &self.src[start..],
                Some('\\') if backslash => {
                    self.bump();
                }
                Some(c) if c == quote => {
                    if self.peek() == Some(quote) {
                        self.bump();
                    } else {
                        return &self.src[start..self.pos - quote.len_utf8()];
                    }
                }
                Some(_) => {}
            }
        }
    }

    /// PostgreSQL dollar quoting: `$$…$$` or `$tag$…$tag$`. Returns false (and consumes nothing)
    /// when the `$` at the cursor does not open one.
    fn dollar_quoted(&mut self) -> bool {
        let rest = self.rest();
        let Some(body) = rest.strip_prefix('$') else {
            return false;
        };
        let tag_len = body
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(body.len());
        let tag = &body[..tag_len];
        if !body[tag_len..].starts_with('$') || tag.starts_with(|c: char| c.is_ascii_digit()) {
            return false;
        }
        let open = tag_len + 2;
        let delimiter = &rest[..open];
        match rest[open..].find(delimiter) {
            Some(end) => self.pos += open + end + open,
            None => self.pos = self.src.len(),
        }
        true
    }

    fn next_token(&mut self) -> Option<Token<'a>> {
        self.skip_trivia();
        let c = self.peek()?;
        let start = self.pos;
        match c {
            '\'' => {
                self.bump();
                self.quoted('\'', true);
                Some(Token::Literal)
            }
            '"' | '`' => {
                self.bump();
                Some(Token::Quoted(self.quoted(c, false)))
            }
            '[' => {
                self.bump();
                Some(Token::Quoted(self.quoted(']', false)))
            }
            '$' if self.dollar_quoted() => Some(Token::Literal),
            c if c.is_ascii_digit()
                || c == '$'
                || c == '?'
                || c == ':'
                    && self.rest()[1..].starts_with(|n: char| n.is_ascii_alphanumeric()) =>
            {
                self.bump();
                while self
                    .peek()
                    .is_some_and(|n| n.is_ascii_alphanumeric() || n == '_' || n == '.')
                {
                    self.bump();
                }
                Some(Token::Literal)
            }
            c if c.is_alphabetic() || c == '_' => {
                // E'…', B'…', X'…', N'…' and U&'…' are string literals with a prefix.
                self.bump();
                while self
                    .peek()
                    .is_some_and(|n| n.is_alphanumeric() || n == '_' || n == '$')
                {
                    self.bump();
                }
                let word = &self.src[start..self.pos];
                if self.peek() == Some('\'') && word.len() <= 2 {
                    self.bump();
                    self.quoted('\'', true);
                    return Some(Token::Literal);
                }
                Some(Token::Word(word))
            }
            c => {
                self.bump();
                Some(Token::Symbol(c))
            }
        }
    }
}

/// The tokens of the first statement, at most `LIMIT` of them.
fn tokens(sql: &str) -> Vec<Token<'_>> {
    const LIMIT: usize = 4_096;
    let mut lexer = Lexer::new(sql);
    let mut out = Vec::new();
    while let Some(token) = lexer.next_token() {
        if token == Token::Symbol(';') || out.len() == LIMIT {
            break;
        }
        out.push(token);
    }
    out
}

fn is_kw(token: Option<&Token<'_>>, kw: &str) -> bool {
    matches!(token, Some(Token::Word(w)) if w.eq_ignore_ascii_case(kw))
}

struct Parser<'t, 'a> {
    tokens: &'t [Token<'a>],
    pos: usize,
}

impl<'a> Parser<'_, 'a> {
    fn peek(&self) -> Option<&Token<'a>> {
        self.tokens.get(self.pos)
    }

    fn at(&self, kw: &str) -> bool {
        is_kw(self.peek(), kw)
    }

    fn eat(&mut self, kw: &str) -> bool {
        let hit = self.at(kw);
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn eat_all(&mut self, kws: &[&str]) {
        while kws.iter().any(|kw| self.at(kw)) {
            self.pos += 1;
        }
    }

    /// `IF [NOT] EXISTS`.
    fn eat_if_exists(&mut self) {
        if self.at("if") {
            self.pos += 1;
            self.eat("not");
            self.eat("exists");
        }
    }

    /// A possibly schema-qualified name at the cursor.
    fn name(&mut self) -> Option<String> {
        let mut parts = Vec::new();
        loop {
            let part = match self.peek()? {
                Token::Word(w) => w.to_ascii_lowercase(),
                Token::Quoted(q) => (*q).to_owned(),
                _ => break,
            };
            parts.push(part);
            self.pos += 1;
            if self.peek() == Some(&Token::Symbol('.')) {
                self.pos += 1;
            } else {
                break;
            }
        }
        if parts.is_empty() {
            return None;
        }
        let name = parts.join(".");
        let valid = !name.is_empty()
            && name.len() <= MAX_TABLE_LEN
            && name
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '$' | '.' | '-' | ' '));
        valid.then_some(name)
    }

    /// Moves to the first `kw` at parenthesis depth zero; false if there is none.
    fn seek_top(&mut self, kws: &[&str]) -> bool {
        let mut depth = 0usize;
        while let Some(token) = self.peek() {
            match token {
                Token::Symbol('(') => depth += 1,
                Token::Symbol(')') => depth = depth.saturating_sub(1),
                Token::Word(_) if depth == 0 && kws.iter().any(|kw| self.at(kw)) => return true,
                _ => {}
            }
            self.pos += 1;
        }
        false
    }

    /// Skips a parenthesised group at the cursor, if there is one.
    fn skip_group(&mut self) -> bool {
        if self.peek() != Some(&Token::Symbol('(')) {
            return false;
        }
        let mut depth = 0usize;
        while let Some(token) = self.peek() {
            match token {
                Token::Symbol('(') => depth += 1,
                Token::Symbol(')') => {
                    depth -= 1;
                    if depth == 0 {
                        self.pos += 1;
                        return true;
                    }
                }
                _ => {}
            }
            self.pos += 1;
        }
        true
    }

    /// The table of the `FROM` list at the cursor: the first item that is a table, not a
    /// table-valued function (`unnest(…)`, `generate_series(…)`, `json_each(…)`) nor a
    /// subquery; [`FUNCTION_TABLE`] if the list has functions and no table.
    fn first_table_of_from(&mut self) -> Option<String> {
        let mut function = false;
        loop {
            self.eat_all(&["lateral", "only"]);
            if !self.skip_group() {
                let name = self.name();
                if self.skip_group() {
                    function = true;
                } else if name.is_some() {
                    return name;
                }
            }
            // on to the next item: after a comma or a JOIN at this depth, until the clause ends
            let mut depth = 0usize;
            loop {
                match self.peek() {
                    None => return function.then(|| FUNCTION_TABLE.to_owned()),
                    Some(Token::Symbol('(')) => depth += 1,
                    Some(Token::Symbol(')')) if depth == 0 => {
                        return function.then(|| FUNCTION_TABLE.to_owned());
                    }
                    Some(Token::Symbol(')')) => depth -= 1,
                    Some(Token::Symbol(',')) if depth == 0 => {
                        self.pos += 1;
                        break;
                    }
                    Some(Token::Word(_)) if depth == 0 && self.at("join") => {
                        self.pos += 1;
                        break;
                    }
                    Some(Token::Word(_))
                        if depth == 0 && FROM_ENDS.iter().any(|kw| self.at(kw)) =>
                    {
                        return function.then(|| FUNCTION_TABLE.to_owned());
                    }
                    Some(_) => {}
                }
                self.pos += 1;
            }
        }
    }

    fn statement(&mut self) -> Classified {
        while self.peek() == Some(&Token::Symbol('(')) {
            self.pos += 1;
        }
        let Some(Token::Word(first)) = self.peek() else {
            return classified(OTHER, None);
        };
        let first = first.to_ascii_lowercase();
        self.pos += 1;
        match first.as_str() {
            "with" => {
                self.eat("recursive");
                if self.seek_top(&["select", "insert", "update", "delete", "merge", "replace"]) {
                    self.statement()
                } else {
                    classified(OTHER, None)
                }
            }
            "select" | "values" | "table" => {
                let start = self.pos;
                let mut table = None;
                if self.seek_top(&["from"]) {
                    self.pos += 1;
                    table = self.first_table_of_from();
                } else {
                    // No FROM at the top level: take the first one inside.
                    self.pos = start;
                    while let Some(token) = self.peek() {
                        if is_kw(Some(token), "from") {
                            self.pos += 1;
                            table = self.first_table_of_from();
                            break;
                        }
                        self.pos += 1;
                    }
                }
                classified("SELECT", table)
            }
            "insert" | "replace" => {
                self.eat_all(&[
                    "or",
                    "replace",
                    "ignore",
                    "abort",
                    "fail",
                    "rollback",
                    "low_priority",
                    "delayed",
                    "high_priority",
                ]);
                self.eat("into");
                classified("INSERT", self.name())
            }
            "update" => {
                self.eat_all(&[
                    "or",
                    "replace",
                    "ignore",
                    "abort",
                    "fail",
                    "rollback",
                    "low_priority",
                    "only",
                ]);
                classified("UPDATE", self.name())
            }
            "delete" => {
                if self.seek_top(&["from"]) {
                    self.pos += 1;
                    self.eat("only");
                    classified("DELETE", self.name())
                } else {
                    classified("DELETE", None)
                }
            }
            "merge" => {
                self.eat("into");
                classified("MERGE", self.name())
            }
            "begin" | "start" => classified("BEGIN", None),
            "commit" | "end" => classified("COMMIT", None),
            "rollback" | "abort" => classified("ROLLBACK", None),
            "savepoint" => classified("SAVEPOINT", None),
            "release" => classified("RELEASE", None),
            "create" | "alter" | "drop" => {
                let operation = match first.as_str() {
                    "create" => "CREATE",
                    "alter" => "ALTER",
                    _ => "DROP",
                };
                self.eat_all(&[
                    "or",
                    "replace",
                    "temporary",
                    "temp",
                    "unlogged",
                    "global",
                    "local",
                    "unique",
                    "virtual",
                ]);
                if self.eat("table") {
                    self.eat_if_exists();
                    self.eat("only");
                    classified(operation, self.name())
                } else if self.eat("index") && operation == "CREATE" {
                    if self.seek_top(&["on"]) {
                        self.pos += 1;
                        self.eat("only");
                        classified(operation, self.name())
                    } else {
                        classified(operation, None)
                    }
                } else {
                    classified(operation, None)
                }
            }
            "truncate" => {
                self.eat("table");
                self.eat("only");
                classified("TRUNCATE", self.name())
            }
            "pragma" => classified("PRAGMA", None),
            "set" => classified("SET", None),
            "show" => classified("SHOW", None),
            "explain" | "describe" | "desc" => classified("EXPLAIN", None),
            "call" => classified("CALL", None),
            _ => classified(OTHER, None),
        }
    }
}

fn classified(operation: &'static str, table: Option<String>) -> Classified {
    Classified { operation, table }
}

/// Reads the operation and table of the first statement of `sql`. See the [module
/// docs](self).
pub fn classify(sql: &str) -> Classified {
    let tokens = tokens(sql);
    Parser {
        tokens: &tokens,
        pos: 0,
    }
    .statement()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(sql: &str) -> (&'static str, Option<String>) {
        let s = classify(sql);
        (s.operation, s.table)
    }

    fn t(op: &'static str, table: &str) -> (&'static str, Option<String>) {
        (op, Some(table.to_owned()))
    }

    #[test]
    fn dml() {
        assert_eq!(c("SELECT 1"), ("SELECT", None));
        assert_eq!(
            c("select id from Users where id = $1"),
            t("SELECT", "users")
        );
        assert_eq!(
            c("SELECT count(*) FROM (SELECT * FROM a) sub"),
            ("SELECT", None)
        );
        assert_eq!(
            c("SELECT (SELECT max(x) FROM a) AS m FROM b"),
            t("SELECT", "b")
        );
        assert_eq!(c("SELECT EXISTS(SELECT 1 FROM a)"), t("SELECT", "a"));
        assert_eq!(
            c("INSERT INTO guilds (id) VALUES (?)"),
            t("INSERT", "guilds")
        );
        assert_eq!(
            c("INSERT OR IGNORE INTO guilds VALUES (1)"),
            t("INSERT", "guilds")
        );
        assert_eq!(c("REPLACE INTO guilds VALUES (1)"), t("INSERT", "guilds"));
        assert_eq!(c("UPDATE ONLY \"Guilds\" SET a = 1"), t("UPDATE", "Guilds"));
        assert_eq!(
            c("DELETE FROM `app`.`users` WHERE 1"),
            t("DELETE", "app.users")
        );
        assert_eq!(
            c("delete t1 from t1 join t2 on t1.a = t2.a"),
            t("DELETE", "t1")
        );
        assert_eq!(
            c("(SELECT a FROM x) UNION (SELECT a FROM y)"),
            t("SELECT", "x")
        );
    }

    #[test]
    fn with_takes_the_main_statement() {
        assert_eq!(
            c(
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5) INSERT INTO n SELECT x FROM c"
            ),
            t("INSERT", "n")
        );
        assert_eq!(
            c("with a as (delete from q returning *) select * from a"),
            t("SELECT", "a")
        );
    }

    #[test]
    fn comments_literals_and_quotes() {
        assert_eq!(
            c("-- FROM nope\n/* FROM /* nested */ nope */ SELECT * FROM yes"),
            t("SELECT", "yes")
        );
        assert_eq!(c("SELECT 'FROM secret' AS x"), ("SELECT", None));
        assert_eq!(
            c("SELECT E'\\' FROM secret' FROM real"),
            t("SELECT", "real")
        );
        assert_eq!(
            c("SELECT $tag$ FROM secret $tag$ FROM real"),
            t("SELECT", "real")
        );
        assert_eq!(
            c("SELECT $$ FROM secret $$, $1 FROM real"),
            t("SELECT", "real")
        );
        assert_eq!(c("SELECT 'it''s' FROM [my table]"), t("SELECT", "my table"));
        assert_eq!(c("SELECT * FROM 'literal'"), ("SELECT", None));
    }

    #[test]
    fn transactions_ddl_and_others() {
        assert_eq!(c("BEGIN"), ("BEGIN", None));
        assert_eq!(c("START TRANSACTION"), ("BEGIN", None));
        assert_eq!(c("COMMIT"), ("COMMIT", None));
        assert_eq!(c("ROLLBACK TO SAVEPOINT s1"), ("ROLLBACK", None));
        assert_eq!(c("SAVEPOINT s1"), ("SAVEPOINT", None));
        assert_eq!(c("RELEASE SAVEPOINT s1"), ("RELEASE", None));
        assert_eq!(
            c("CREATE TABLE IF NOT EXISTS s.t (id INT)"),
            t("CREATE", "s.t")
        );
        assert_eq!(c("CREATE UNIQUE INDEX i ON t (a)"), t("CREATE", "t"));
        assert_eq!(c("DROP TABLE IF EXISTS t"), t("DROP", "t"));
        assert_eq!(c("ALTER TABLE t ADD COLUMN b INT"), t("ALTER", "t"));
        assert_eq!(c("TRUNCATE TABLE t"), t("TRUNCATE", "t"));
        assert_eq!(c("CREATE VIEW v AS SELECT 1"), ("CREATE", None));
        assert_eq!(c("PRAGMA foreign_keys = ON"), ("PRAGMA", None));
        assert_eq!(c("VACUUM"), ("OTHER", None));
        assert_eq!(c(""), ("OTHER", None));
        assert_eq!(c("'just a string'"), ("OTHER", None));
        assert_eq!(c("SELECT 1; DROP TABLE t"), ("SELECT", None));
    }

    #[test]
    fn table_valued_functions_are_not_tables() {
        assert_eq!(
            c("SELECT * FROM UNNEST($1::bigint[]) AS ids(id) JOIN custom_card c ON c.id = ids.id"),
            t("SELECT", "custom_card")
        );
        assert_eq!(
            c("SELECT * FROM generate_series(1, 10) g, LATERAL json_each(x) j, public.cards"),
            t("SELECT", "public.cards")
        );
        assert_eq!(
            c("SELECT value FROM json_each('[1,2]') WHERE value > 1"),
            t("SELECT", FUNCTION_TABLE)
        );
        assert_eq!(
            c(
                "SELECT * FROM generate_series(1, 3) CROSS JOIN LATERAL unnest(ARRAY[1]) u ORDER BY 1"
            ),
            t("SELECT", FUNCTION_TABLE)
        );
        assert_eq!(
            c("SELECT * FROM (SELECT 1) s LEFT OUTER JOIN users u USING (id)"),
            t("SELECT", "users")
        );
        assert_eq!(
            c("SELECT x FROM (SELECT * FROM unnest($1) LIMIT 1) s"),
            ("SELECT", None)
        );
        assert_eq!(
            c("SELECT a FROM t WHERE b IN (SELECT b FROM u)"),
            t("SELECT", "t")
        );
    }

    #[test]
    fn overlong_names_are_dropped() {
        let sql = format!("SELECT * FROM {}", "a".repeat(MAX_TABLE_LEN + 1));
        assert_eq!(c(&sql), ("SELECT", None));
    }
}
