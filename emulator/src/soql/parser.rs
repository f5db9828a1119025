//! A recursive-descent parser for the SOQL subset the emulator serves.
//!
//! Grammar (keywords case-insensitive):
//!
//! ```text
//! query      := SELECT item (',' item)* FROM name [alias] [WHERE condition]
//!               [ORDER BY order (',' order)*] [LIMIT int] [OFFSET int]
//! item       := COUNT '(' ')' | path
//! path       := name ('.' name)*
//! condition  := unary (AND unary)* | unary (OR unary)*
//! unary      := NOT unary | '(' condition ')' | path op literal | path [NOT] IN list
//!             | path LIKE literal | path (INCLUDES | EXCLUDES) list
//! order      := path [ASC | DESC] [NULLS (FIRST | LAST)]
//! ```
//!
//! SOQL gives `AND` and `OR` no precedence over each other: mixing them without
//! parentheses is a syntax error at the second operator (`unexpected token: 'OR'`), as
//! in Salesforce.

use super::ast::{
    CompareOp, Condition, FieldPath, Literal, LiteralKind, NullsOrder, OrderItem, Query,
    RelativeDate, SelectItem,
};
use super::error::{ErrorCode, SoqlError};
use super::lexer::{Token, TokenKind, tokenize};

/// Words that cannot name a field or an alias (SOQL's reserved keywords, plus the clause
/// words that may follow `FROM name`).
const RESERVED: &[&str] = &[
    "AND", "ASC", "DESC", "EXCLUDES", "FIRST", "FROM", "GROUP", "HAVING", "IN", "INCLUDES", "LAST",
    "LIKE", "LIMIT", "NOT", "NULL", "NULLS", "OR", "SELECT", "WHERE", "WITH",
];
const CLAUSE_WORDS: &[&str] = &["ORDER", "OFFSET", "USING", "FOR", "UPDATE", "TRUE", "FALSE"];

/// Parses a SOQL query.
pub fn parse(query: &str) -> Result<Query, SoqlError> {
    let tokens = tokenize(query)?;
    Parser {
        query,
        tokens,
        at: 0,
    }
    .query()
}

struct Parser<'q> {
    query: &'q str,
    tokens: Vec<Token>,
    at: usize,
}

impl<'q> Parser<'q> {
    fn peek(&self) -> Token {
        self.tokens[self.at.min(self.tokens.len() - 1)]
    }

    fn peek_second(&self) -> Token {
        self.tokens[(self.at + 1).min(self.tokens.len() - 1)]
    }

    fn next(&mut self) -> Token {
        let t = self.peek();
        if t.kind != TokenKind::Eof {
            self.at += 1;
        }
        t
    }

    fn text(&self, t: Token) -> &'q str {
        t.text(self.query)
    }

    fn at_keyword(&self, word: &str) -> bool {
        self.peek().is_keyword(self.query, word)
    }

    fn eat_keyword(&mut self, word: &str) -> bool {
        let yes = self.at_keyword(word);
        if yes {
            self.next();
        }
        yes
    }

    fn expect_keyword(&mut self, word: &str) -> Result<Token, SoqlError> {
        if self.at_keyword(word) {
            Ok(self.next())
        } else {
            Err(self.unexpected(self.peek()))
        }
    }

    fn expect(&mut self, kind: TokenKind) -> Result<Token, SoqlError> {
        if self.peek().kind == kind {
            Ok(self.next())
        } else {
            Err(self.unexpected(self.peek()))
        }
    }

    /// `unexpected token: 'X'`, Salesforce's answer to any token the grammar cannot take.
    fn unexpected(&self, t: Token) -> SoqlError {
        let shown = match t.kind {
            TokenKind::Eof => "<EOF>",
            _ => self.text(t),
        };
        SoqlError::at(
            ErrorCode::MalformedQuery,
            self.query,
            t.start,
            &format!("unexpected token: '{shown}'"),
        )
    }

    fn is_reserved(&self, t: Token) -> bool {
        let text = self.text(t);
        RESERVED.iter().any(|w| w.eq_ignore_ascii_case(text))
    }

    /// A name: an identifier that is not a reserved word.
    fn name(&mut self) -> Result<Token, SoqlError> {
        let t = self.peek();
        if t.kind == TokenKind::Ident && !self.is_reserved(t) {
            Ok(self.next())
        } else {
            Err(self.unexpected(t))
        }
    }

    fn query(mut self) -> Result<Query, SoqlError> {
        self.expect_keyword("SELECT")?;
        let select = self.select_list()?;
        self.expect_keyword("FROM")?;
        let from = self.name()?;
        let alias = self.alias();
        let filter = if self.eat_keyword("WHERE") {
            Some(self.condition()?)
        } else {
            None
        };
        let mut order_by = Vec::new();
        if self.at_keyword("ORDER") {
            self.next();
            self.expect_keyword("BY")?;
            loop {
                order_by.push(self.order_item()?);
                if self.peek().kind != TokenKind::Comma {
                    break;
                }
                self.next();
            }
        }
        let limit = if self.eat_keyword("LIMIT") {
            Some(self.count()?)
        } else {
            None
        };
        let offset = if self.eat_keyword("OFFSET") {
            Some(self.count()?)
        } else {
            None
        };
        let end = self.peek();
        if end.kind != TokenKind::Eof {
            return Err(self.unexpected(end));
        }
        Ok(Query {
            select,
            from: self.text(from).to_string(),
            from_offset: from.start,
            alias,
            filter,
            order_by,
            limit,
            offset,
            text: self.query.to_string(),
        })
    }

    fn alias(&mut self) -> Option<String> {
        let t = self.peek();
        let text = self.text(t);
        let usable = t.kind == TokenKind::Ident
            && !self.is_reserved(t)
            && !CLAUSE_WORDS.iter().any(|w| w.eq_ignore_ascii_case(text));
        if usable {
            self.next();
            Some(text.to_string())
        } else {
            None
        }
    }

    fn select_list(&mut self) -> Result<Vec<SelectItem>, SoqlError> {
        let mut items = Vec::new();
        loop {
            let t = self.peek();
            let is_count =
                t.is_keyword(self.query, "COUNT") && self.peek_second().kind == TokenKind::LParen;
            if is_count {
                // COUNT() stands alone: Salesforce refuses it beside fields.
                if !items.is_empty() {
                    return Err(self.unexpected(t));
                }
                self.next();
                self.expect(TokenKind::LParen)?;
                self.expect(TokenKind::RParen)?;
                items.push(SelectItem::Count { offset: t.start });
                if self.peek().kind == TokenKind::Comma {
                    return Err(self.unexpected(self.peek()));
                }
                return Ok(items);
            }
            items.push(SelectItem::Field(self.path()?));
            if self.peek().kind != TokenKind::Comma {
                return Ok(items);
            }
            self.next();
        }
    }

    fn path(&mut self) -> Result<FieldPath, SoqlError> {
        let first = self.name()?;
        let mut parts = vec![self.text(first).to_string()];
        while self.peek().kind == TokenKind::Dot {
            self.next();
            let part = self.name()?;
            parts.push(self.text(part).to_string());
        }
        if self.peek().kind == TokenKind::LParen {
            // Functions (`COUNT(Id)`, `toLabel(...)`, `FIELDS(ALL)`) are not served.
            return Err(self.unexpected(self.peek()));
        }
        Ok(FieldPath {
            parts,
            offset: first.start,
        })
    }

    fn condition(&mut self) -> Result<Condition, SoqlError> {
        let first = self.unary()?;
        let joiner = if self.at_keyword("AND") {
            "AND"
        } else if self.at_keyword("OR") {
            "OR"
        } else {
            return Ok(first);
        };
        let other = if joiner == "AND" { "OR" } else { "AND" };
        let mut terms = vec![first];
        while self.eat_keyword(joiner) {
            terms.push(self.unary()?);
        }
        if self.at_keyword(other) {
            return Err(self.unexpected(self.peek()));
        }
        Ok(if joiner == "AND" {
            Condition::And(terms)
        } else {
            Condition::Or(terms)
        })
    }

    fn unary(&mut self) -> Result<Condition, SoqlError> {
        if self.eat_keyword("NOT") {
            return Ok(Condition::Not(Box::new(self.unary()?)));
        }
        if self.peek().kind == TokenKind::LParen {
            self.next();
            let inner = self.condition()?;
            self.expect(TokenKind::RParen)?;
            return Ok(inner);
        }
        let field = self.path()?;
        let t = self.peek();
        let op = match t.kind {
            TokenKind::Eq => Some(CompareOp::Eq),
            TokenKind::Ne => Some(CompareOp::Ne),
            TokenKind::Lt => Some(CompareOp::Lt),
            TokenKind::Le => Some(CompareOp::Le),
            TokenKind::Gt => Some(CompareOp::Gt),
            TokenKind::Ge => Some(CompareOp::Ge),
            _ => None,
        };
        if let Some(op) = op {
            self.next();
            let value = self.literal()?;
            return Ok(Condition::Compare { field, op, value });
        }
        if self.eat_keyword("LIKE") {
            let pattern = self.literal()?;
            return Ok(Condition::Like { field, pattern });
        }
        if self.eat_keyword("IN") {
            let values = self.literal_list()?;
            return Ok(Condition::In {
                field,
                negated: false,
                values,
            });
        }
        if self.at_keyword("NOT") && self.peek_second().is_keyword(self.query, "IN") {
            self.next();
            self.next();
            let values = self.literal_list()?;
            return Ok(Condition::In {
                field,
                negated: true,
                values,
            });
        }
        for (word, excludes) in [("INCLUDES", false), ("EXCLUDES", true)] {
            if self.eat_keyword(word) {
                let values = self.literal_list()?;
                return Ok(Condition::Includes {
                    field,
                    excludes,
                    values,
                });
            }
        }
        Err(self.unexpected(t))
    }

    fn literal_list(&mut self) -> Result<Vec<Literal>, SoqlError> {
        self.expect(TokenKind::LParen)?;
        let mut values = vec![self.literal()?];
        while self.peek().kind == TokenKind::Comma {
            self.next();
            values.push(self.literal()?);
        }
        self.expect(TokenKind::RParen)?;
        Ok(values)
    }

    fn literal(&mut self) -> Result<Literal, SoqlError> {
        let t = self.next();
        let text = self.text(t);
        let kind = match t.kind {
            TokenKind::String => LiteralKind::String(text[1..text.len() - 1].to_string()),
            TokenKind::Number => LiteralKind::Number(text.to_string()),
            TokenKind::Date => LiteralKind::Date(text.to_string()),
            TokenKind::DateTime => LiteralKind::DateTime(text.to_string()),
            TokenKind::Ident => {
                let upper = text.to_ascii_uppercase();
                match upper.as_str() {
                    "NULL" => LiteralKind::Null,
                    "TRUE" => LiteralKind::Bool(true),
                    "FALSE" => LiteralKind::Bool(false),
                    _ => LiteralKind::Relative(self.relative_date(t, &upper)?),
                }
            }
            _ => return Err(self.unexpected(t)),
        };
        Ok(Literal {
            kind,
            offset: t.start,
        })
    }

    fn relative_date(&mut self, t: Token, upper: &str) -> Result<RelativeDate, SoqlError> {
        let fixed = match upper {
            "YESTERDAY" => Some(RelativeDate::Yesterday),
            "TODAY" => Some(RelativeDate::Today),
            "TOMORROW" => Some(RelativeDate::Tomorrow),
            "LAST_90_DAYS" => Some(RelativeDate::Last90Days),
            "NEXT_90_DAYS" => Some(RelativeDate::Next90Days),
            "LAST_MONTH" => Some(RelativeDate::LastMonth),
            "THIS_MONTH" => Some(RelativeDate::ThisMonth),
            "NEXT_MONTH" => Some(RelativeDate::NextMonth),
            "LAST_YEAR" => Some(RelativeDate::LastYear),
            "THIS_YEAR" => Some(RelativeDate::ThisYear),
            "NEXT_YEAR" => Some(RelativeDate::NextYear),
            _ => None,
        };
        if let Some(fixed) = fixed {
            return Ok(fixed);
        }
        let with_n: fn(u32) -> RelativeDate = match upper {
            "LAST_N_DAYS" => RelativeDate::LastNDays,
            "NEXT_N_DAYS" => RelativeDate::NextNDays,
            "N_DAYS_AGO" => RelativeDate::NDaysAgo,
            "N_DAYS_FROM_NOW" => RelativeDate::NDaysFromNow,
            _ => return Err(self.unexpected(t)),
        };
        self.expect(TokenKind::Colon)?;
        let n = self.expect(TokenKind::Number)?;
        let value = self
            .text(n)
            .parse::<u32>()
            .map_err(|_| self.unexpected(n))?;
        Ok(with_n(value))
    }

    fn order_item(&mut self) -> Result<OrderItem, SoqlError> {
        let field = self.path()?;
        let descending = if self.eat_keyword("DESC") {
            true
        } else {
            self.eat_keyword("ASC");
            false
        };
        let nulls = if self.eat_keyword("NULLS") {
            if self.eat_keyword("FIRST") {
                Some(NullsOrder::First)
            } else {
                self.expect_keyword("LAST")?;
                Some(NullsOrder::Last)
            }
        } else {
            None
        };
        Ok(OrderItem {
            field,
            descending,
            nulls,
        })
    }

    /// A non-negative integer after `LIMIT` or `OFFSET`.
    fn count(&mut self) -> Result<u64, SoqlError> {
        let t = self.peek();
        if t.kind != TokenKind::Number {
            return Err(self.unexpected(t));
        }
        let text = self.text(t);
        let value = text.parse::<u64>().map_err(|_| self.unexpected(t))?;
        if value > i32::MAX as u64 {
            return Err(SoqlError::at(
                ErrorCode::MalformedQuery,
                self.query,
                t.start,
                &format!("numeric value out of range: {text}"),
            ));
        }
        self.next();
        Ok(value)
    }
}

#[cfg(test)]
mod tests;
