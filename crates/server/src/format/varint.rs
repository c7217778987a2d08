//! Zigzag variable-length integers, as Kafka's record format writes them.
//!
//! Kafka encodes `varint` (32-bit) and `varlong` (64-bit) fields the same
//! way protobuf's `sint64` does: zigzag, then base-128 little-endian groups.
//! A 32-bit value zigzags to the same bytes whether it is treated as 32 or
//! 64 bits, so one encoder serves both; the decoders differ only in the
//! range they accept.

use super::FormatError;

/// Appends `value` as a zigzag varint.
pub fn put_varlong(out: &mut Vec<u8>, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Number of bytes `put_varlong(value)` writes.
pub fn varlong_len(value: i64) -> usize {
    let v = ((value << 1) ^ (value >> 63)) as u64;
    // 64 - leading zeros = significant bits; each byte carries 7 of them.
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Reads a zigzag varlong at `*pos`, advancing it.
#[inline]
pub fn get_varlong(buf: &[u8], pos: &mut usize) -> Result<i64, FormatError> {
    // Most varints in a batch are one byte (small deltas and counts) or two
    // (lengths of values up to 8 KiB, zigzagged): both without a loop.
    match buf.get(*pos..) {
        Some([b0, ..]) if b0 & 0x80 == 0 => {
            *pos += 1;
            Ok(unzigzag(u64::from(*b0)))
        }
        Some([b0, b1, ..]) if b1 & 0x80 == 0 => {
            *pos += 2;
            Ok(unzigzag(u64::from(b0 & 0x7f) | u64::from(*b1) << 7))
        }
        _ => get_long_varlong(buf, pos),
    }
}

fn unzigzag(raw: u64) -> i64 {
    ((raw >> 1) as i64) ^ -((raw & 1) as i64)
}

/// [`get_varlong`] for three bytes or more, and every error.
#[cold]
fn get_long_varlong(buf: &[u8], pos: &mut usize) -> Result<i64, FormatError> {
    let mut raw: u64 = 0;
    let mut shift = 0u32;
    loop {
        let byte = *buf.get(*pos).ok_or(FormatError::Truncated("varint"))?;
        *pos += 1;
        if shift == 63 && byte > 1 {
            return Err(FormatError::Corrupt("varint longer than 64 bits"));
        }
        raw |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 63 {
            return Err(FormatError::Corrupt("varint longer than 10 bytes"));
        }
    }
    Ok(unzigzag(raw))
}

/// Reads a zigzag varint that must fit 32 bits.
#[inline]
pub fn get_varint(buf: &[u8], pos: &mut usize) -> Result<i32, FormatError> {
    let v = get_varlong(buf, pos)?;
    i32::try_from(v).map_err(|_| FormatError::Corrupt("varint out of 32-bit range"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings() {
        // Values from Kafka's ByteUtilsTest (zigzag of 0, -1, 1, -64, 63, 64).
        let cases: &[(i64, &[u8])] = &[
            (0, &[0x00]),
            (-1, &[0x01]),
            (1, &[0x02]),
            (-64, &[0x7f]),
            (63, &[0x7e]),
            (64, &[0x80, 0x01]),
            (i64::from(i32::MAX), &[0xfe, 0xff, 0xff, 0xff, 0x0f]),
            (i64::from(i32::MIN), &[0xff, 0xff, 0xff, 0xff, 0x0f]),
        ];
        for (value, bytes) in cases {
            let mut out = Vec::new();
            put_varlong(&mut out, *value);
            assert_eq!(&out, bytes, "encoding {value}");
            assert_eq!(varlong_len(*value), bytes.len());
            let mut pos = 0;
            assert_eq!(get_varlong(&out, &mut pos).unwrap(), *value);
        }
    }

    #[test]
    fn rejects_overlong_and_truncated() {
        let mut pos = 0;
        assert!(get_varlong(&[0x80; 11], &mut pos).is_err());
        let mut pos = 0;
        assert!(get_varlong(&[0x80, 0x80], &mut pos).is_err());
        let mut pos = 0;
        let mut big = Vec::new();
        put_varlong(&mut big, i64::from(i32::MAX) + 1);
        assert!(get_varint(&big, &mut pos).is_err());
    }

    #[test]
    fn two_byte_varints_past_a_truncated_end_are_refused() {
        let mut pos = 1;
        // The second byte says more follow, and nothing does.
        assert!(get_varlong(&[0x00, 0x80, 0x81], &mut pos).is_err());
        let mut pos = 1;
        assert_eq!(get_varlong(&[0x00, 0x80, 0x01], &mut pos).unwrap(), 64);
        assert_eq!(pos, 3);
        let mut pos = 3;
        assert!(
            get_varlong(&[0x00, 0x80, 0x01], &mut pos).is_err(),
            "at the end"
        );
    }

    proptest! {
        #[test]
        fn round_trip(v in any::<i64>()) {
            let mut out = Vec::new();
            put_varlong(&mut out, v);
            prop_assert_eq!(out.len(), varlong_len(v));
            let mut pos = 0;
            prop_assert_eq!(get_varlong(&out, &mut pos).unwrap(), v);
            prop_assert_eq!(pos, out.len());
        }
    }
}
