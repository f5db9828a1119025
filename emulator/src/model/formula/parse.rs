//! Formula text to an expression: a lexer, then a precedence-climbing parser that
//! resolves field references against the object's fields as it goes.

use super::{BinOp, Expr, Func};
use crate::model::{ObjectDef, Value};

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Token {
    Number(f64),
    Str(String),
    Ident(String),
    Op(&'static str),
    Open,
    Close,
    Comma,
}

/// The tokens of `source`, or what is wrong with it.
pub(super) fn lex(source: &str) -> Result<Vec<Token>, String> {
    let mut lexer = Lexer {
        chars: source.chars().collect(),
        i: 0,
    };
    let mut tokens = Vec::new();
    while let Some(&c) = lexer.chars.get(lexer.i) {
        if c.is_whitespace() {
            lexer.i += 1;
            continue;
        }
        let next_is_digit = lexer
            .chars
            .get(lexer.i + 1)
            .is_some_and(char::is_ascii_digit);
        tokens.push(if c.is_ascii_digit() || (c == '.' && next_is_digit) {
            lexer.number()?
        } else if c == '\'' || c == '"' {
            lexer.string(c)?
        } else if c.is_alphabetic() || c == '_' || c == '$' {
            lexer.ident()
        } else {
            lexer.operator(c)?
        });
    }
    Ok(tokens)
}

/// Where the lexer is in the formula's characters.
struct Lexer {
    chars: Vec<char>,
    i: usize,
}

impl Lexer {
    /// Advances while `part` holds; returns what it passed over.
    fn take_while(&mut self, part: impl Fn(char) -> bool) -> String {
        let start = self.i;
        while self.chars.get(self.i).is_some_and(|c| part(*c)) {
            self.i += 1;
        }
        self.chars[start..self.i].iter().collect()
    }

    fn number(&mut self) -> Result<Token, String> {
        let text = self.take_while(|c| c.is_ascii_digit() || c == '.');
        let n = text.parse().map_err(|_| format!("bad number {text}"))?;
        Ok(Token::Number(n))
    }

    /// A string between `quote`s; a backslash escapes the next character (`\n`, `\t`).
    fn string(&mut self, quote: char) -> Result<Token, String> {
        let mut s = String::new();
        self.i += 1;
        loop {
            match self.chars.get(self.i) {
                None => return Err("unterminated string".to_owned()),
                Some('\\') => {
                    let escaped = self.chars.get(self.i + 1).ok_or("unterminated string")?;
                    s.push(match escaped {
                        'n' => '\n',
                        't' => '\t',
                        other => *other,
                    });
                    self.i += 2;
                }
                Some(q) if *q == quote => {
                    self.i += 1;
                    return Ok(Token::Str(s));
                }
                Some(other) => {
                    s.push(*other);
                    self.i += 1;
                }
            }
        }
    }

    fn ident(&mut self) -> Token {
        Token::Ident(self.take_while(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '$')))
    }

    /// A two-character operator, or else a one-character one or punctuation.
    fn operator(&mut self, c: char) -> Result<Token, String> {
        let two: String = self.chars[self.i..(self.i + 2).min(self.chars.len())]
            .iter()
            .collect();
        let op = ["==", "<>", "!=", "<=", ">=", "&&", "||"]
            .into_iter()
            .find(|op| *op == two);
        if let Some(op) = op {
            self.i += 2;
            return Ok(Token::Op(op));
        }
        self.i += 1;
        Ok(match c {
            '(' => Token::Open,
            ')' => Token::Close,
            ',' => Token::Comma,
            '+' => Token::Op("+"),
            '-' => Token::Op("-"),
            '*' => Token::Op("*"),
            '/' => Token::Op("/"),
            '^' => Token::Op("^"),
            '&' => Token::Op("&"),
            '=' => Token::Op("="),
            '<' => Token::Op("<"),
            '>' => Token::Op(">"),
            other => return Err(format!("unexpected character {other:?}")),
        })
    }
}

pub(super) struct Parser<'a> {
    pub(super) tokens: &'a [Token],
    pub(super) pos: usize,
    pub(super) object: &'a ObjectDef,
}

/// Binding strength of each binary operator (higher binds tighter).
fn binary_op(op: &str) -> Option<(u8, BinOp)> {
    Some(match op {
        "||" => (1, BinOp::Or),
        "&&" => (2, BinOp::And),
        "=" | "==" => (3, BinOp::Eq),
        "<>" | "!=" => (3, BinOp::Ne),
        "<" => (4, BinOp::Lt),
        "<=" => (4, BinOp::Le),
        ">" => (4, BinOp::Gt),
        ">=" => (4, BinOp::Ge),
        "+" => (5, BinOp::Add),
        "-" => (5, BinOp::Sub),
        "&" => (5, BinOp::Concat),
        "*" => (6, BinOp::Mul),
        "/" => (6, BinOp::Div),
        "^" => (7, BinOp::Pow),
        _ => return None,
    })
}

impl Parser<'_> {
    pub(super) fn expr(&mut self, min_strength: u8) -> Result<Expr, String> {
        let mut left = self.unary()?;
        while let Some(Token::Op(op)) = self.tokens.get(self.pos) {
            let Some((strength, bin)) = binary_op(op) else {
                break;
            };
            if strength <= min_strength {
                break;
            }
            self.pos += 1;
            let right = self.expr(strength)?;
            left = Expr::Binary(bin, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        match self.tokens.get(self.pos) {
            Some(Token::Op("-")) => {
                self.pos += 1;
                Ok(Expr::Negate(Box::new(self.unary()?)))
            }
            Some(Token::Op("+")) => {
                self.pos += 1;
                self.unary()
            }
            _ => self.primary(),
        }
    }

    fn primary(&mut self) -> Result<Expr, String> {
        let token = self
            .tokens
            .get(self.pos)
            .ok_or("the formula ends too early")?
            .clone();
        self.pos += 1;
        match token {
            Token::Number(n) => Ok(Expr::Literal(Value::Double(n))),
            Token::Str(s) => Ok(Expr::Literal(Value::text(s))),
            Token::Open => {
                let e = self.expr(0)?;
                self.expect_close()?;
                Ok(e)
            }
            Token::Ident(name) => {
                if self.tokens.get(self.pos) == Some(&Token::Open) {
                    self.pos += 1;
                    return self.call(&name);
                }
                match name.to_ascii_uppercase().as_str() {
                    "TRUE" => return Ok(Expr::Literal(Value::Bool(true))),
                    "FALSE" => return Ok(Expr::Literal(Value::Bool(false))),
                    "NULL" => return Ok(Expr::Literal(Value::Null)),
                    _ => {}
                }
                self.field_reference(&name)
            }
            other => Err(format!("unexpected {other:?}")),
        }
    }

    fn expect_close(&mut self) -> Result<(), String> {
        if self.tokens.get(self.pos) == Some(&Token::Close) {
            self.pos += 1;
            Ok(())
        } else {
            Err("missing ')'".to_owned())
        }
    }

    fn call(&mut self, name: &str) -> Result<Expr, String> {
        let (func, arity) =
            Func::by_name(name).ok_or_else(|| format!("unknown function {name}"))?;
        let mut args = Vec::new();
        if self.tokens.get(self.pos) == Some(&Token::Close) {
            self.pos += 1;
        } else {
            loop {
                args.push(self.expr(0)?);
                match self.tokens.get(self.pos) {
                    Some(Token::Comma) => self.pos += 1,
                    Some(Token::Close) => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(format!("missing ')' after the arguments of {name}")),
                }
            }
        }
        if !arity.contains(&args.len()) {
            return Err(format!("{name} does not take {} arguments", args.len()));
        }
        Ok(Expr::Call(func, args))
    }

    fn field_reference(&self, name: &str) -> Result<Expr, String> {
        match name.split_once('.') {
            None => self
                .object
                .field(name)
                .map(|(i, _)| Expr::Field(i))
                .ok_or_else(|| format!("field {name} does not exist")),
            Some((relationship, field)) if !field.contains('.') => self
                .object
                .relationship(relationship)
                .map(|(i, _)| Expr::Parent {
                    reference: i,
                    field: field.into(),
                })
                .ok_or_else(|| format!("relationship {relationship} does not exist")),
            Some(_) => Err(format!("{name} reaches more than one lookup away")),
        }
    }
}
