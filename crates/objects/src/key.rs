//! Where an object lives inside the store: `sha256/<first 2 hex>/<64 hex>` for a whole object,
//! `tmp/<uuid>` while it is being written. Only a string that passed [`is_sha256`] ever becomes
//! part of a path, so no outside input can name another place in the store.

use object_store::path::Path;

use crate::ObjectsError;

/// The folder of temporaries, under the store's prefix.
pub(crate) const TMP_DIR: &str = "tmp";
/// The folder of whole objects, under the store's prefix.
pub(crate) const OBJECTS_DIR: &str = "sha256";

/// Whether `s` is a sha256 as this store names objects: exactly 64 lowercase hex digits.
pub fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `s` when it is a sha256, else [`ObjectsError::InvalidKey`].
pub(crate) fn checked(s: &str) -> Result<&str, ObjectsError> {
    if is_sha256(s) {
        Ok(s)
    } else {
        Err(ObjectsError::InvalidKey(s.chars().take(80).collect()))
    }
}

/// The final name of the object `sha256` (already checked).
pub(crate) fn object_path(prefix: &Path, sha256: &str) -> Path {
    prefix.child(OBJECTS_DIR).child(&sha256[..2]).child(sha256)
}

/// A fresh temporary name.
pub(crate) fn temp_path(prefix: &Path) -> Path {
    prefix
        .child(TMP_DIR)
        .child(uuid::Uuid::new_v4().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn object_path_is_sharded_by_the_first_two_digits() {
        let sha = "ab".repeat(32);
        assert_eq!(
            object_path(&Path::default(), &sha).as_ref(),
            format!("sha256/ab/{sha}")
        );
        assert_eq!(
            object_path(&Path::from("ci/objects"), &sha).as_ref(),
            format!("ci/objects/sha256/ab/{sha}")
        );
    }

    #[test]
    fn temp_paths_are_fresh_and_under_tmp() {
        let prefix = Path::from("p");
        let (a, b) = (temp_path(&prefix), temp_path(&prefix));
        assert_ne!(a, b);
        assert!(a.as_ref().starts_with("p/tmp/"), "{a}");
        assert_eq!(a.parts().count(), 3);
    }

    #[test]
    fn is_sha256_refuses_near_misses() {
        let good = "0123456789abcdef".repeat(4);
        assert!(is_sha256(&good));
        assert!(!is_sha256(&good.to_uppercase()));
        assert!(!is_sha256(&good[..63]));
        assert!(!is_sha256(&format!("{good}0")));
        assert!(!is_sha256(""));
        assert!(!is_sha256(&format!("../{}", &good[3..])));
        assert!(!is_sha256(&format!("{}g", &good[..63])));
        assert_eq!(checked(&good), Ok(good.as_str()));
        assert!(matches!(checked("x/y"), Err(ObjectsError::InvalidKey(_))));
    }

    proptest! {
        #[test]
        fn every_digest_is_a_key_and_maps_to_its_shard(bytes in proptest::array::uniform32(any::<u8>())) {
            let sha = hex::encode(bytes);
            prop_assert!(is_sha256(&sha));
            let path = object_path(&Path::from("pre"), &sha);
            let parts: Vec<String> = path.parts().map(|p| p.as_ref().to_owned()).collect();
            prop_assert_eq!(parts, vec!["pre".to_owned(), "sha256".to_owned(), sha[..2].to_owned(), sha.clone()]);
        }

        #[test]
        fn anything_else_is_refused(s in "\\PC{0,80}") {
            let expected = s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase());
            prop_assert_eq!(is_sha256(&s), expected);
        }

        #[test]
        fn one_wrong_character_is_refused(bytes in proptest::array::uniform32(any::<u8>()), at in 0usize..64, c in any::<char>()) {
            prop_assume!(!matches!(c, '0'..='9' | 'a'..='f'));
            let mut sha: Vec<char> = hex::encode(bytes).chars().collect();
            sha[at] = c;
            let s: String = sha.into_iter().collect();
            prop_assert!(!is_sha256(&s));
        }
    }
}
