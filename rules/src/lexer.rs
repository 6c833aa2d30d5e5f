//! Splits a condition string into tokens with byte spans.
//!
//! Bare words run until whitespace or one of `( ) , = ! < > & " '`, so paths, globs (`/tmp/*`), negative
//! numbers and indexed fields (`proc.aname[2]`) are single words. Quoted strings take `'…'` or `"…"` with
//! the escapes `\\`, `\'`, `\"`, `\n`, `\t`. The lexer never panics on any input.

use crate::ast::Span;

/// One token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Token {
    /// A bare word: field, keyword, macro, list name or unquoted value.
    Word(String),
    /// A quoted string (quotes removed, escapes resolved).
    Str(String),
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `,`
    Comma,
    /// `=` (also `==`)
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `&`
    Amp,
}

/// A lexing error: what and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LexError {
    /// What is wrong.
    pub message: String,
    /// Where (for an unterminated string: the opening quote).
    pub span: Span,
}

fn is_word_char(c: char) -> bool {
    !c.is_whitespace()
        && !matches!(
            c,
            '(' | ')' | ',' | '=' | '!' | '<' | '>' | '&' | '"' | '\''
        )
}

/// Tokenizes `src`.
pub fn tokenize(src: &str) -> Result<Vec<(Token, Span)>, LexError> {
    let mut out = Vec::new();
    let mut chars = src.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        let single = |tok: Token| (tok, Span::new(start, start + c.len_utf8()));
        let next_is_eq = matches!(chars.peek(), Some((_, '=')));
        match c {
            c if c.is_whitespace() => continue,
            '(' => out.push(single(Token::LParen)),
            ')' => out.push(single(Token::RParen)),
            ',' => out.push(single(Token::Comma)),
            '&' => out.push(single(Token::Amp)),
            '=' | '<' | '>' | '!' => {
                let tok = match (c, next_is_eq) {
                    ('=', _) => Token::Eq,
                    ('<', false) => Token::Lt,
                    ('<', true) => Token::Le,
                    ('>', false) => Token::Gt,
                    ('>', true) => Token::Ge,
                    ('!', true) => Token::Ne,
                    _ => {
                        return Err(LexError {
                            message: "unexpected `!` (use `not` or `!=`)".into(),
                            span: Span::new(start, start + 1),
                        });
                    }
                };
                let end = if next_is_eq {
                    chars.next();
                    start + 2
                } else {
                    start + 1
                };
                out.push((tok, Span::new(start, end)));
            }
            '"' | '\'' => {
                let (text, end) = quoted(src, start, c, &mut chars)?;
                out.push((Token::Str(text), Span::new(start, end)));
            }
            _ => {
                let mut end = start + c.len_utf8();
                while let Some(&(i, d)) = chars.peek() {
                    if !is_word_char(d) {
                        break;
                    }
                    end = i + d.len_utf8();
                    chars.next();
                }
                out.push((
                    Token::Word(src[start..end].to_string()),
                    Span::new(start, end),
                ));
            }
        }
    }
    Ok(out)
}

fn quoted(
    src: &str,
    start: usize,
    quote: char,
    chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
) -> Result<(String, usize), LexError> {
    let mut text = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            c if c == quote => return Ok((text, i + 1)),
            '\\' => match chars.next() {
                Some((_, 'n')) => text.push('\n'),
                Some((_, 't')) => text.push('\t'),
                Some((_, e @ ('\\' | '\'' | '"'))) => text.push(e),
                Some((j, e)) => {
                    return Err(LexError {
                        message: format!("unknown escape `\\{e}` in string"),
                        span: Span::new(i, j + e.len_utf8()),
                    });
                }
                None => break,
            },
            c => text.push(c),
        }
    }
    Err(LexError {
        message: "unterminated string".into(),
        span: Span::new(start, src.len().max(start + 1)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<Token> {
        tokenize(src).unwrap().into_iter().map(|(t, _)| t).collect()
    }

    #[test]
    fn words_symbols_and_strings() {
        assert_eq!(
            kinds(r#"proc.aname[2]!=/tmp/* and(a,"x\"y")<=-1"#),
            vec![
                Token::Word("proc.aname[2]".into()),
                Token::Ne,
                Token::Word("/tmp/*".into()),
                Token::Word("and".into()),
                Token::LParen,
                Token::Word("a".into()),
                Token::Comma,
                Token::Str("x\"y".into()),
                Token::RParen,
                Token::Le,
                Token::Word("-1".into()),
            ]
        );
        assert_eq!(
            kinds("a == 'b c' & 4"),
            vec![
                Token::Word("a".into()),
                Token::Eq,
                Token::Str("b c".into()),
                Token::Amp,
                Token::Word("4".into()),
            ]
        );
    }

    #[test]
    fn spans_are_byte_ranges() {
        let toks = tokenize("x = 'é'").unwrap();
        assert_eq!(toks[2].1, Span::new(4, 8));
    }

    #[test]
    fn unterminated_string_points_at_opening_quote() {
        let err = tokenize("a = \"abc").unwrap_err();
        assert_eq!(err.message, "unterminated string");
        assert_eq!(err.span.start, 4);
    }
}
