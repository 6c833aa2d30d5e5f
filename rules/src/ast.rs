//! The syntax tree of a condition, as the parser produces it: names are not resolved and values are not
//! typed yet (that is `check`'s job). Every node keeps the byte span of its text in the condition string so
//! errors can point at it.

/// A byte range in the condition string.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl Span {
    /// The span from `start` to `end`.
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }
}

/// A condition expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// Both hold.
    And(Box<Expr>, Box<Expr>),
    /// Either holds.
    Or(Box<Expr>, Box<Expr>),
    /// Does not hold.
    Not(Box<Expr>),
    /// `field op value`.
    Compare {
        /// The field on the left.
        field: FieldRef,
        /// The operator.
        op: CmpOp,
        /// Where the operator is.
        op_span: Span,
        /// The right-hand side.
        value: Operand,
    },
    /// `field exists`.
    Exists(FieldRef),
    /// A bare name: a macro reference.
    Macro {
        /// The macro's name.
        name: String,
        /// Where it is.
        span: Span,
    },
}

/// A field named in a condition or an output template, e.g. `proc.aname[2]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldRef {
    /// The name without the index (`proc.aname`).
    pub name: String,
    /// The `[N]` index, when written.
    pub index: Option<u32>,
    /// Where the whole reference is.
    pub span: Span,
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    /// `=`
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
    /// `in (…)`
    In,
    /// `contains`
    Contains,
    /// `icontains` (ASCII case-insensitive)
    IContains,
    /// `startswith`
    StartsWith,
    /// `endswith`
    EndsWith,
    /// `glob`
    Glob,
    /// `regex`
    Regex,
    /// `&`: bit test, true when `field & value != 0`.
    BitAnd,
}

impl CmpOp {
    /// The word operators, as written.
    pub const WORDS: [(&'static str, CmpOp); 7] = [
        ("in", CmpOp::In),
        ("contains", CmpOp::Contains),
        ("icontains", CmpOp::IContains),
        ("startswith", CmpOp::StartsWith),
        ("endswith", CmpOp::EndsWith),
        ("glob", CmpOp::Glob),
        ("regex", CmpOp::Regex),
    ];

    /// The operator as written in a condition.
    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::In => "in",
            CmpOp::Contains => "contains",
            CmpOp::IContains => "icontains",
            CmpOp::StartsWith => "startswith",
            CmpOp::EndsWith => "endswith",
            CmpOp::Glob => "glob",
            CmpOp::Regex => "regex",
            CmpOp::BitAnd => "&",
        }
    }
}

/// The right-hand side of a comparison.
#[derive(Clone, Debug, PartialEq)]
pub enum Operand {
    /// One value.
    Single(Literal),
    /// The parenthesized items of `in (…)`; bare words may name lists.
    List(Vec<Literal>),
}

/// A value as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Literal {
    /// The text (quotes removed, escapes resolved).
    pub text: String,
    /// It was quoted (a quoted word never names a list).
    pub quoted: bool,
    /// Where it is (quotes included).
    pub span: Span,
}
