//! Just enough of the protobuf wire format to edit an ONNX model without its schema: split a
//! message into fields (keeping each field's bytes so untouched ones are copied verbatim) and
//! write new fields.

/// A field's payload as the wire carries it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    /// Strings, bytes, nested messages and packed repeated numbers.
    Bytes(&'a [u8]),
    Fixed32(u32),
}

/// One field of a message, with the exact bytes it occupied (tag included).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field<'a> {
    pub number: u32,
    pub value: Value<'a>,
    pub raw: &'a [u8],
}

impl<'a> Field<'a> {
    /// The payload as bytes (strings, messages), if it is length-delimited.
    pub fn bytes(&self) -> Option<&'a [u8]> {
        match self.value {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The payload as a UTF-8 string, if it is one.
    pub fn str(&self) -> Option<&'a str> {
        self.bytes().and_then(|b| std::str::from_utf8(b).ok())
    }
}

/// The message is not valid protobuf (truncated, or an unknown wire type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Malformed;

/// Splits a message into its fields, in wire order.
pub(crate) fn fields(message: &[u8]) -> Result<Vec<Field<'_>>, Malformed> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < message.len() {
        let start = pos;
        let key = varint(message, &mut pos)?;
        let number = u32::try_from(key >> 3).map_err(|_| Malformed)?;
        let value = match key & 7 {
            0 => Value::Varint(varint(message, &mut pos)?),
            1 => Value::Fixed64(u64::from_le_bytes(
                take(message, &mut pos, 8)?
                    .try_into()
                    .map_err(|_| Malformed)?,
            )),
            2 => {
                let len = usize::try_from(varint(message, &mut pos)?).map_err(|_| Malformed)?;
                Value::Bytes(take(message, &mut pos, len)?)
            }
            5 => Value::Fixed32(u32::from_le_bytes(
                take(message, &mut pos, 4)?
                    .try_into()
                    .map_err(|_| Malformed)?,
            )),
            _ => return Err(Malformed),
        };
        out.push(Field {
            number,
            value,
            raw: &message[start..pos],
        });
    }
    Ok(out)
}

/// The integers of a repeated integer field, whether written packed or one per field.
pub(crate) fn repeated_ints(fields: &[Field<'_>], number: u32) -> Result<Vec<i64>, Malformed> {
    let mut out = Vec::new();
    for field in fields.iter().filter(|f| f.number == number) {
        match field.value {
            Value::Varint(v) => out.push(v as i64),
            Value::Bytes(packed) => {
                let mut pos = 0;
                while pos < packed.len() {
                    out.push(varint(packed, &mut pos)? as i64);
                }
            }
            _ => return Err(Malformed),
        }
    }
    Ok(out)
}

fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, Malformed> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*pos).ok_or(Malformed)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(Malformed)
}

fn take<'a>(buf: &'a [u8], pos: &mut usize, len: usize) -> Result<&'a [u8], Malformed> {
    let end = pos.checked_add(len).ok_or(Malformed)?;
    let slice = buf.get(*pos..end).ok_or(Malformed)?;
    *pos = end;
    Ok(slice)
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Writes a varint field (ints, enums; negative `i64`s as ten bytes, as protobuf does).
pub(crate) fn put_int(out: &mut Vec<u8>, number: u32, value: i64) {
    put_varint(out, u64::from(number) << 3);
    put_varint(out, value as u64);
}

/// Writes a 32-bit float field.
pub(crate) fn put_f32(out: &mut Vec<u8>, number: u32, value: f32) {
    put_varint(out, (u64::from(number) << 3) | 5);
    out.extend_from_slice(&value.to_le_bytes());
}

/// Writes a length-delimited field (a string, bytes or a nested message).
pub(crate) fn put_bytes(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    put_varint(out, (u64::from(number) << 3) | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_fields_read_back_with_their_bytes() {
        let mut msg = Vec::new();
        put_int(&mut msg, 1, 300);
        put_bytes(&mut msg, 4, b"Attention");
        put_f32(&mut msg, 2, 0.125);
        put_int(&mut msg, 3, -1);
        let parsed = fields(&msg).expect("valid message");
        assert_eq!(parsed.len(), 4);
        assert_eq!(parsed[0].value, Value::Varint(300));
        assert_eq!(parsed[1].str(), Some("Attention"));
        assert_eq!(parsed[2].value, Value::Fixed32(0.125f32.to_bits()));
        assert_eq!(parsed[3].value, Value::Varint(u64::MAX));
        let rejoined: Vec<u8> = parsed.iter().flat_map(|f| f.raw.iter().copied()).collect();
        assert_eq!(rejoined, msg);
    }

    #[test]
    fn repeated_ints_read_packed_and_unpacked() {
        let mut msg = Vec::new();
        put_int(&mut msg, 8, 0);
        let mut packed = Vec::new();
        for v in [2u64, 1, 3] {
            put_varint(&mut packed, v);
        }
        put_bytes(&mut msg, 8, &packed);
        let parsed = fields(&msg).expect("valid message");
        assert_eq!(repeated_ints(&parsed, 8), Ok(vec![0, 2, 1, 3]));
    }

    #[test]
    fn truncated_or_unknown_wire_types_are_malformed() {
        let mut msg = Vec::new();
        put_bytes(&mut msg, 1, b"abcdef");
        assert!(fields(&msg[..msg.len() - 1]).is_err());
        assert!(fields(&[0x0b]).is_err()); // wire type 3 (groups) is not ONNX's
        assert!(fields(&[0x80; 11]).is_err());
    }
}
