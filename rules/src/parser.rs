//! Parses a condition string into an [`Expr`].
//!
//! Grammar (lowest precedence first):
//! ```text
//! expr    = and ("or" and)*
//! and     = unary ("and" unary)*
//! unary   = "not" unary | primary
//! primary = "(" expr ")" | field op value | field "in" "(" value ("," value)* ")"
//!         | field "exists" | macro_name
//! ```
//! so `not a or b and c` is `(not a) or (b and c)`. The parser never panics; errors carry the span of the
//! offending token.

use crate::ast::{CmpOp, Expr, FieldRef, Literal, Operand, Span};
use crate::lexer::{LexError, Token, tokenize};

/// A syntax error: what and where.
pub type ParseError = LexError;

/// Parses a whole condition.
pub fn parse_condition(src: &str) -> Result<Expr, ParseError> {
    let tokens = tokenize(src)?;
    let mut p = Parser {
        tokens,
        pos: 0,
        len: src.len(),
    };
    if p.tokens.is_empty() {
        return Err(p.error_here("empty condition"));
    }
    let expr = p.expr(0)?;
    match p.peek() {
        None => Ok(expr),
        Some((tok, span)) => Err(ParseError {
            message: format!(
                "unexpected {}, expected `and`, `or` or the end",
                describe(tok)
            ),
            span: *span,
        }),
    }
}

/// Parses a field reference such as `proc.aname[2]` (shared with output templates).
pub fn parse_field_ref(word: &str, span: Span) -> Result<FieldRef, ParseError> {
    let Some(open) = word.find('[') else {
        return Ok(FieldRef {
            name: word.to_string(),
            index: None,
            span,
        });
    };
    let index = word[open..]
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|digits| digits.parse::<u32>().ok());
    match index {
        Some(index) => Ok(FieldRef {
            name: word[..open].to_string(),
            index: Some(index),
            span,
        }),
        None => Err(ParseError {
            message: format!("bad field index in `{word}` (expected `name[N]`)"),
            span,
        }),
    }
}

/// Nesting limit, so hostile input cannot overflow the stack.
const MAX_DEPTH: usize = 200;

struct Parser {
    tokens: Vec<(Token, Span)>,
    pos: usize,
    len: usize,
}

fn describe(tok: &Token) -> String {
    match tok {
        Token::Word(w) => format!("`{w}`"),
        Token::Str(_) => "string".into(),
        Token::LParen => "`(`".into(),
        Token::RParen => "`)`".into(),
        Token::Comma => "`,`".into(),
        Token::Eq => "`=`".into(),
        Token::Ne => "`!=`".into(),
        Token::Lt => "`<`".into(),
        Token::Le => "`<=`".into(),
        Token::Gt => "`>`".into(),
        Token::Ge => "`>=`".into(),
        Token::Amp => "`&`".into(),
    }
}

/// Whether `w` is a word of the condition syntax (`and`, `or`, `not`, `exists`, a word operator), not a
/// field or a value.
pub fn is_keyword(w: &str) -> bool {
    matches!(w, "and" | "or" | "not" | "exists") || CmpOp::WORDS.iter().any(|(k, _)| *k == w)
}

impl Parser {
    fn peek(&self) -> Option<&(Token, Span)> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<(Token, Span)> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn peek_word(&self, word: &str) -> bool {
        matches!(self.peek(), Some((Token::Word(w), _)) if w == word)
    }

    fn error_here(&self, what: &str) -> ParseError {
        match self.peek() {
            Some((tok, span)) => ParseError {
                message: format!("{what}, found {}", describe(tok)),
                span: *span,
            },
            None => ParseError {
                message: format!("{what}, found the end of the condition"),
                span: Span::new(self.len, self.len + 1),
            },
        }
    }

    fn expr(&mut self, depth: usize) -> Result<Expr, ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.error_here("condition nested too deeply"));
        }
        let mut left = self.and(depth)?;
        while self.peek_word("or") {
            self.pos += 1;
            let right = self.and(depth)?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self, depth: usize) -> Result<Expr, ParseError> {
        let mut left = self.unary(depth)?;
        while self.peek_word("and") {
            self.pos += 1;
            let right = self.unary(depth)?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self, depth: usize) -> Result<Expr, ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.error_here("condition nested too deeply"));
        }
        if self.peek_word("not") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.unary(depth + 1)?)));
        }
        self.primary(depth)
    }

    fn primary(&mut self, depth: usize) -> Result<Expr, ParseError> {
        match self.peek().cloned() {
            Some((Token::LParen, _)) => {
                self.pos += 1;
                let inner = self.expr(depth + 1)?;
                match self.peek() {
                    Some((Token::RParen, _)) => {
                        self.pos += 1;
                        Ok(inner)
                    }
                    _ => Err(self.error_here("expected `)`")),
                }
            }
            Some((Token::Word(word), span)) if !is_keyword(&word) => {
                self.pos += 1;
                self.after_name(word, span)
            }
            _ => Err(self.error_here("expected a field comparison, a macro name or `(`")),
        }
    }

    /// After a bare name: a comparison if an operator follows, else a macro reference.
    fn after_name(&mut self, word: String, span: Span) -> Result<Expr, ParseError> {
        let op = match self.peek() {
            Some((Token::Eq, _)) => Some(CmpOp::Eq),
            Some((Token::Ne, _)) => Some(CmpOp::Ne),
            Some((Token::Lt, _)) => Some(CmpOp::Lt),
            Some((Token::Le, _)) => Some(CmpOp::Le),
            Some((Token::Gt, _)) => Some(CmpOp::Gt),
            Some((Token::Ge, _)) => Some(CmpOp::Ge),
            Some((Token::Amp, _)) => Some(CmpOp::BitAnd),
            Some((Token::Word(w), _)) => {
                CmpOp::WORDS.iter().find(|(k, _)| k == w).map(|(_, op)| *op)
            }
            _ => None,
        };
        if self.peek_word("exists") {
            self.pos += 1;
            return Ok(Expr::Exists(parse_field_ref(&word, span)?));
        }
        let Some(op) = op else {
            if word.contains('.') {
                return Err(self.error_here(&format!("expected an operator after `{word}`")));
            }
            return Ok(Expr::Macro { name: word, span });
        };
        let field = parse_field_ref(&word, span)?;
        let op_span = self.next().map(|(_, s)| s).unwrap_or_default();
        let value = if op == CmpOp::In {
            Operand::List(self.list()?)
        } else {
            Operand::Single(self.value()?)
        };
        Ok(Expr::Compare {
            field,
            op,
            op_span,
            value,
        })
    }

    fn value(&mut self) -> Result<Literal, ParseError> {
        match self.peek().cloned() {
            Some((Token::Word(text), span)) if !matches!(text.as_str(), "and" | "or" | "not") => {
                self.pos += 1;
                Ok(Literal {
                    text,
                    quoted: false,
                    span,
                })
            }
            Some((Token::Str(text), span)) => {
                self.pos += 1;
                Ok(Literal {
                    text,
                    quoted: true,
                    span,
                })
            }
            _ => Err(self.error_here("expected a value")),
        }
    }

    fn list(&mut self) -> Result<Vec<Literal>, ParseError> {
        if !matches!(self.peek(), Some((Token::LParen, _))) {
            return Err(self.error_here("expected `(` after `in`"));
        }
        self.pos += 1;
        let mut items = vec![self.value()?];
        loop {
            match self.peek() {
                Some((Token::Comma, _)) => {
                    self.pos += 1;
                    items.push(self.value()?);
                }
                Some((Token::RParen, _)) => {
                    self.pos += 1;
                    return Ok(items);
                }
                _ => return Err(self.error_here("expected `,` or `)` in the list")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A compact rendering of the tree for assertions.
    fn show(e: &Expr) -> String {
        match e {
            Expr::And(a, b) => format!("({} and {})", show(a), show(b)),
            Expr::Or(a, b) => format!("({} or {})", show(a), show(b)),
            Expr::Not(a) => format!("(not {})", show(a)),
            Expr::Exists(f) => format!("{} exists", f.name),
            Expr::Macro { name, .. } => name.clone(),
            Expr::Compare {
                field, op, value, ..
            } => {
                let idx = field.index.map(|i| format!("[{i}]")).unwrap_or_default();
                let v = match value {
                    Operand::Single(l) => l.text.clone(),
                    Operand::List(ls) => {
                        let t: Vec<&str> = ls.iter().map(|l| l.text.as_str()).collect();
                        format!("({})", t.join(","))
                    }
                };
                format!("{}{idx} {} {v}", field.name, op.as_str())
            }
        }
    }

    fn p(src: &str) -> String {
        show(&parse_condition(src).unwrap())
    }

    #[test]
    fn precedence_not_binds_tighter_than_and_than_or() {
        assert_eq!(p("not a or b and c"), "((not a) or (b and c))");
        assert_eq!(
            p("a and b or c and not d"),
            "((a and b) or (c and (not d)))"
        );
        assert_eq!(p("not (a or b) and c"), "((not (a or b)) and c)");
        assert_eq!(p("a or b or c"), "((a or b) or c)");
    }

    #[test]
    fn every_operator_parses() {
        for op in [
            "=",
            "!=",
            "<",
            "<=",
            ">",
            ">=",
            "contains",
            "icontains",
            "startswith",
            "endswith",
            "glob",
            "regex",
            "&",
        ] {
            assert_eq!(p(&format!("f.x {op} 1")), format!("f.x {op} 1"));
        }
        assert_eq!(p("f.x in (a, 'b c', 3)"), "f.x in (a,b c,3)");
        assert_eq!(p("f.x exists and not m"), "(f.x exists and (not m))");
        assert_eq!(p("proc.aname[2] = node"), "proc.aname[2] = node");
        assert_eq!(p("f.x==1"), "f.x = 1");
    }

    #[test]
    fn errors_point_at_the_token() {
        let err = parse_condition("a = 1 and").unwrap_err();
        assert_eq!(err.span.start, 9);
        let err = parse_condition("proc.name bash").unwrap_err();
        assert_eq!(
            err.message,
            "expected an operator after `proc.name`, found `bash`"
        );
        assert_eq!(err.span, Span::new(10, 14));
        let err = parse_condition("f.x in (a b)").unwrap_err();
        assert_eq!(err.span, Span::new(10, 11));
        let err = parse_condition("(a = 1").unwrap_err();
        assert!(err.message.starts_with("expected `)`"));
        assert!(parse_condition("a = 1 )").is_err());
        assert!(parse_condition("").is_err());
        assert!(parse_condition("proc.aname[x] = 1").is_err());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let src = format!("{}a{}", "(".repeat(5000), ")".repeat(5000));
        assert!(parse_condition(&src).is_err());
        let src = format!("{}a", "not ".repeat(5000));
        assert!(parse_condition(&src).is_err());
    }

    proptest::proptest! {
        #[test]
        fn random_input_never_panics(src in "\\PC{0,80}") {
            let _ = parse_condition(&src);
        }

        #[test]
        fn random_token_soup_never_panics(
            words in proptest::collection::vec(
                proptest::sample::select(vec![
                    "and", "or", "not", "(", ")", ",", "=", "!=", "<", ">=", "in", "exists",
                    "contains", "proc.name", "m", "'x'", "\"y", "&", "3", "[", "proc.aname[2]",
                ]),
                0..30,
            )
        ) {
            let _ = parse_condition(&words.join(" "));
        }
    }
}
