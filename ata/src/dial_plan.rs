//! The dial plan: when the digits collected after off-hook form a number to call.
//!
//! Pure: `line::phone` feeds it the digits so far and acts on the [`Verdict`]. The pattern
//! language is a small subset of the Cisco ATA's:
//!
//! - a plan is one or more patterns separated by `|`, optionally inside `( )`:
//!   `(xxxx|9xxxxxxx.)`;
//! - in a pattern, `0`-`9` and `*` match themselves, `x` matches any digit, `[1-5]` or `[135]`
//!   match one digit of the set, and `.` after an element repeats it zero or more times.
//!
//! Whatever the plan, `#` sends the digits collected so far at once, and the interdigit timeout
//! sends a number that some pattern matches. An empty plan matches everything, so the number
//! ends with `#` or the timeout. A number no pattern can ever match gets reorder tone.

/// What the dial plan says about the digits collected so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A pattern matches and none could match a longer number: call now.
    Complete,
    /// A pattern matches, but a longer number could match too: call at the interdigit timeout.
    CompleteOrLonger,
    /// No pattern matches yet, but more digits could make one match: wait.
    Partial,
    /// No pattern can match, whatever follows: reorder.
    Invalid,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Element {
    Literal(char),
    AnyDigit,
    Set(Vec<char>),
}

impl Element {
    fn matches(&self, c: char) -> bool {
        match self {
            Element::Literal(l) => *l == c,
            Element::AnyDigit => c.is_ascii_digit(),
            Element::Set(set) => set.contains(&c),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Step {
    element: Element,
    repeated: bool,
}

/// A parsed dial plan; the empty plan accepts any number.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DialPlan {
    patterns: Vec<Vec<Step>>,
    text: String,
}

impl DialPlan {
    /// Parses the pattern language described in the module docs. The error says what is wrong.
    pub fn parse(text: &str) -> Result<DialPlan, String> {
        let trimmed = text.trim();
        let body = match (trimmed.strip_prefix('('), trimmed.strip_suffix(')')) {
            (Some(_), Some(_)) => &trimmed[1..trimmed.len() - 1],
            (None, None) => trimmed,
            _ => return Err(format!("`{text}`: unbalanced parentheses")),
        };
        if body.is_empty() {
            return Ok(DialPlan::default());
        }
        let patterns = body
            .split('|')
            .map(parse_pattern)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(DialPlan {
            patterns,
            text: trimmed.to_owned(),
        })
    }

    /// The plan as configured.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Judges `digits` (never containing `#`, which the phone handles itself).
    pub fn judge(&self, digits: &str) -> Verdict {
        if self.patterns.is_empty() {
            return if digits.is_empty() {
                Verdict::Partial
            } else {
                Verdict::CompleteOrLonger
            };
        }
        let mut complete = false;
        let mut longer = false;
        for pattern in &self.patterns {
            let positions = reachable(pattern, digits);
            complete |= positions.contains(&pattern.len());
            longer |= positions.iter().any(|&p| p < pattern.len());
        }
        match (complete, longer) {
            (true, false) => Verdict::Complete,
            (true, true) => Verdict::CompleteOrLonger,
            (false, true) => Verdict::Partial,
            (false, false) => Verdict::Invalid,
        }
    }
}

fn parse_pattern(text: &str) -> Result<Vec<Step>, String> {
    let mut steps: Vec<Step> = Vec::new();
    let mut chars = text.trim().chars();
    while let Some(c) = chars.next() {
        let element = match c {
            '0'..='9' | '*' => Element::Literal(c),
            'x' | 'X' => Element::AnyDigit,
            '[' => Element::Set(parse_set(&mut chars, text)?),
            '.' => {
                match steps.last_mut() {
                    Some(last) if !last.repeated => last.repeated = true,
                    _ => return Err(format!("`{text}`: `.` must follow an element")),
                }
                continue;
            }
            other => return Err(format!("`{text}`: `{other}` is not allowed in a pattern")),
        };
        steps.push(Step {
            element,
            repeated: false,
        });
    }
    if steps.is_empty() {
        return Err(format!("`{text}`: empty pattern"));
    }
    Ok(steps)
}

fn parse_set(chars: &mut std::str::Chars<'_>, text: &str) -> Result<Vec<char>, String> {
    let mut set = Vec::new();
    let mut previous: Option<char> = None;
    loop {
        match chars.next() {
            Some(']') => break,
            Some('-') => {
                let (Some(low), Some(high)) = (previous, chars.next()) else {
                    return Err(format!("`{text}`: bad range in [ ]"));
                };
                if !high.is_ascii_digit() || high < low {
                    return Err(format!("`{text}`: bad range {low}-{high}"));
                }
                set.extend((low..=high).skip(1));
                previous = None;
            }
            Some(c) if c.is_ascii_digit() || c == '*' => {
                set.push(c);
                previous = Some(c);
            }
            Some(c) => return Err(format!("`{text}`: `{c}` is not allowed in [ ]")),
            None => return Err(format!("`{text}`: `[` without `]`")),
        }
    }
    if set.is_empty() {
        return Err(format!("`{text}`: empty [ ]"));
    }
    Ok(set)
}

/// The pattern positions reachable after matching all of `digits` (an NFA walk: a repeated
/// element may be skipped or stay put).
fn reachable(pattern: &[Step], digits: &str) -> Vec<usize> {
    let mut current = closure(pattern, vec![0]);
    for c in digits.chars() {
        let mut next = Vec::new();
        for &position in &current {
            if let Some(step) = pattern.get(position) {
                if step.element.matches(c) {
                    next.push(if step.repeated {
                        position
                    } else {
                        position + 1
                    });
                }
            }
        }
        current = closure(pattern, next);
        if current.is_empty() {
            break;
        }
    }
    current
}

fn closure(pattern: &[Step], mut positions: Vec<usize>) -> Vec<usize> {
    let mut index = 0;
    while index < positions.len() {
        let position = positions[index];
        if pattern.get(position).is_some_and(|s| s.repeated) && !positions.contains(&(position + 1))
        {
            positions.push(position + 1);
        }
        index += 1;
    }
    positions.sort_unstable();
    positions.dedup();
    positions
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(text: &str) -> DialPlan {
        DialPlan::parse(text).expect("valid plan")
    }

    #[test]
    fn four_digit_extensions_are_complete_at_the_fourth_digit() {
        let p = plan("(xxxx|9xxxxxxx.)");
        assert_eq!(p.judge("1"), Verdict::Partial);
        assert_eq!(p.judge("123"), Verdict::Partial);
        assert_eq!(p.judge("1234"), Verdict::Complete);
        assert_eq!(p.judge("12345"), Verdict::Invalid);
    }

    #[test]
    fn a_repeated_tail_waits_for_the_timeout_once_it_could_be_complete() {
        let p = plan("(xxxx|9xxxxxxx.)");
        assert_eq!(p.judge("912345"), Verdict::Partial);
        assert_eq!(p.judge("9123456"), Verdict::CompleteOrLonger);
        assert_eq!(p.judge("9123456789"), Verdict::CompleteOrLonger);
    }

    #[test]
    fn sets_and_ranges_match_only_their_digits() {
        let p = plan("[2-4]1[05]");
        assert_eq!(p.judge("210"), Verdict::Complete);
        assert_eq!(p.judge("415"), Verdict::Complete);
        assert_eq!(p.judge("511"), Verdict::Invalid);
        assert_eq!(p.judge("212"), Verdict::Invalid);
    }

    #[test]
    fn the_empty_plan_takes_any_number_at_the_timeout() {
        let p = plan("");
        assert_eq!(p.judge(""), Verdict::Partial);
        assert_eq!(p.judge("9000"), Verdict::CompleteOrLonger);
    }

    #[test]
    fn malformed_plans_say_what_is_wrong() {
        assert!(DialPlan::parse("(xx")
            .expect_err("bad")
            .contains("parentheses"));
        assert!(DialPlan::parse(".x").expect_err("bad").contains("`.`"));
        assert!(DialPlan::parse("[12").expect_err("bad").contains("`[`"));
        assert!(DialPlan::parse("12a").expect_err("bad").contains("`a`"));
        assert!(DialPlan::parse("1||2").expect_err("bad").contains("empty"));
    }
}
