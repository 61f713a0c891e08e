//! KIP-848 subscription regexes under a prefix. The broker matches a regex against whole topic
//! names (RE2J `matches()`), and strait sends it as `<escaped prefix>(?:<regex>)`. For that
//! wrapper to hold, the client's regex must be a well-formed group body (parentheses balanced
//! outside character classes and `\Q…\E` quotes: `x)|(.*` would otherwise match every topic),
//! and its start anchors (`^`, `\A`) must go: matched whole, they can only mean "the start of
//! the name", and after the prefix they would match nothing. librdkafka sends
//! `(^a.*)|(^b.*)` for two regex subscriptions.

/// The regex without its start anchors, or why strait cannot keep it inside the prefix.
pub fn unanchored(regex: &str) -> Result<String, String> {
    let mut out = String::with_capacity(regex.len());
    let mut chars = regex.chars().peekable();
    let mut depth = 0usize;
    let mut in_class = false;
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if quoted {
            out.push(c);
            if c == '\\' && chars.peek() == Some(&'E') {
                out.push(chars.next().unwrap_or('E'));
                quoted = false;
            }
            continue;
        }
        match c {
            '\\' => {
                let Some(next) = chars.next() else {
                    return Err("it ends with a lone backslash".into());
                };
                match next {
                    'A' if !in_class => {}
                    _ => {
                        out.push('\\');
                        out.push(next);
                        quoted = next == 'Q';
                    }
                }
            }
            // "[:alpha:]" inside a class is one item (RE2J's named classes): its ']' does
            // not end the class.
            '[' if in_class && chars.peek() == Some(&':') => {
                out.push('[');
                let mut closed = false;
                while let Some(n) = chars.next() {
                    out.push(n);
                    if n == ':' && chars.peek() == Some(&']') {
                        out.push(chars.next().unwrap_or(']'));
                        closed = true;
                        break;
                    }
                }
                if !closed {
                    return Err("a named character class is not closed".into());
                }
            }
            _ if in_class => {
                out.push(c);
                in_class = c != ']';
            }
            '[' => {
                out.push('[');
                // "[]…]" and "[^]…]": a ']' right at the start is a literal.
                if chars.peek() == Some(&'^') {
                    out.push(chars.next().unwrap_or('^'));
                }
                if chars.peek() == Some(&']') {
                    out.push(chars.next().unwrap_or(']'));
                }
                in_class = true;
            }
            '(' => {
                depth += 1;
                out.push(c);
            }
            ')' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| "it closes a group it never opened".to_string())?;
                out.push(c);
            }
            '^' => {}
            _ => out.push(c),
        }
    }
    if in_class {
        return Err("a character class is not closed".into());
    }
    if quoted {
        // Everything after an open \Q is literal, strait's closing parenthesis included.
        return Err("a \\Q quote is not closed with \\E".into());
    }
    if depth > 0 {
        return Err("a group is not closed".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_anchors_go_wherever_they_are() {
        for (regex, want) in [
            ("^orders.*", "orders.*"),
            ("(^a.*)|(^b.*)", "(a.*)|(b.*)"),
            ("\\Aorders", "orders"),
            ("(?i)^Orders", "(?i)Orders"),
            ("pay.*$", "pay.*$"),
        ] {
            assert_eq!(unanchored(regex).unwrap(), want, "{regex}");
        }
    }

    #[test]
    fn literal_carets_and_parentheses_stay() {
        for regex in [
            "[^a-z]x",
            "[]^]x",
            "[^]]y",
            "a\\^b",
            "\\(x",
            "\\Q(^\\Ey",
            "[(]",
            "[[:alpha:]_]+",
        ] {
            assert_eq!(unanchored(regex).unwrap(), regex, "{regex}");
        }
    }

    #[test]
    fn regexes_that_could_leave_the_wrapper_are_refused() {
        // RE2J reads "[:alpha:]" inside a class as one item, so the parentheses below are
        // inside classes for it, and a scan that ended the class at the first ']' would let
        // "|(.*" through at the top level.
        for regex in [
            "x)|(.*",
            "(x",
            "[a-",
            "x\\",
            ")(",
            "[[:alpha:](])|(.*[[:alpha:])]",
            "x\\Q)|(.*",
            "[[:alpha",
        ] {
            assert!(unanchored(regex).is_err(), "{regex}");
        }
    }
}
