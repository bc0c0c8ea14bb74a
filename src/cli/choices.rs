//! The bench's and the server's choices as clap values, named as the
//! library names them, so the flags take exactly the library's values and
//! no list of them is written twice.

use clap::builder::PossibleValue;
use clap::ValueEnum;

use crate::client::bench::{Expect, Pacing, Sending};
use crate::config::QueueFull;

/// Implements [`ValueEnum`] for an enum with a `name()`, from its variants.
// Not clap's derive: it would turn the variants' doc comments into help
// for each value, which makes all of `--help` its long, many-line form.
macro_rules! value_enum {
    ($ty:ident: $($variant:ident),+) => {
        impl ValueEnum for $ty {
            fn value_variants<'a>() -> &'a [Self] {
                &[$($ty::$variant),+]
            }

            fn to_possible_value(&self) -> Option<PossibleValue> {
                Some(PossibleValue::new(self.name()))
            }
        }
    };
}

value_enum!(Sending: Batched, Single, Segmented);
value_enum!(Pacing: Even, Bursts);
value_enum!(Expect: Greeting, Echo, Any);
value_enum!(QueueFull: Drop, Wait);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_read_back() {
        for s in Sending::value_variants() {
            assert_eq!(Sending::from_str(s.name(), false), Ok(*s));
        }
        for p in Pacing::value_variants() {
            assert_eq!(Pacing::from_str(p.name(), false), Ok(*p));
        }
        for e in Expect::value_variants() {
            assert_eq!(Expect::from_str(e.name(), false), Ok(*e));
        }
        for q in QueueFull::value_variants() {
            assert_eq!(QueueFull::from_str(q.name(), false), Ok(*q));
        }
    }
}
