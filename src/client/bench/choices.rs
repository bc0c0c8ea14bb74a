//! The bench's choices as clap values (feature `cli`), named as the
//! library names them, so the client's flags take exactly the library's
//! values and no list of them is written twice.

use clap::builder::PossibleValue;
use clap::ValueEnum;

use super::{Expect, Pacing, Sending};

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
    }
}
