//! Input rules of the Kinesis API model, checked where requests enter: names, ARNs, shard
//! ids, hash keys, limits. Each failure is the exception AWS gives, naming the value.

use super::error::ApiError;
use crate::core::catalog::parse_shard_id;

const NAME_RULE: &str = "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+";

pub fn name(value: &str, member: &str) -> Result<(), ApiError> {
    if value.is_empty() {
        return Err(ApiError::constraint(
            value,
            member,
            "Member must have length greater than or equal to 1",
        ));
    }
    if value.len() > 128 {
        return Err(ApiError::constraint(
            value,
            member,
            "Member must have length less than or equal to 128",
        ));
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Err(ApiError::constraint(value, member, NAME_RULE));
    }
    Ok(())
}

pub fn stream_name(value: &str) -> Result<(), ApiError> {
    name(value, "streamName")
}

/// The stream name from `arn:aws:kinesis:<region>:<account>:stream/<name>`.
pub fn stream_name_from_arn(arn: &str) -> Result<String, ApiError> {
    let bad = || {
        ApiError::constraint(
            arn,
            "streamARN",
            "Member must satisfy regular expression pattern: arn:aws.*:kinesis:.*:\\d{12}:stream/\\S+",
        )
    };
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    if parts.len() != 6
        || parts[0] != "arn"
        || !parts[1].starts_with("aws")
        || parts[2] != "kinesis"
        || parts[4].len() != 12
        || !parts[4].bytes().all(|b| b.is_ascii_digit())
        || arn.len() > 2048
    {
        return Err(bad());
    }
    let stream = parts[5].strip_prefix("stream/").ok_or_else(bad)?;
    if stream.contains('/') {
        return Err(bad());
    }
    name(stream, "streamARN")?;
    Ok(stream.to_string())
}

/// The stream a request names, by StreamName or StreamARN (which must agree when both come).
pub fn resolve_stream(name: Option<&str>, arn: Option<&str>) -> Result<String, ApiError> {
    match (name, arn) {
        (Some(n), None) => {
            stream_name(n)?;
            Ok(n.to_string())
        }
        (None, Some(a)) => stream_name_from_arn(a),
        (Some(n), Some(a)) => {
            stream_name(n)?;
            let from_arn = stream_name_from_arn(a)?;
            if from_arn != n {
                return Err(ApiError::invalid_argument(format!(
                    "StreamName {n} and StreamARN {a} name different streams."
                )));
            }
            Ok(from_arn)
        }
        (None, None) => Err(ApiError::invalid_argument(
            "Either StreamName or StreamARN should be provided.",
        )),
    }
}

pub fn shard_id(value: &str, member: &str) -> Result<u32, ApiError> {
    name(value, member)?;
    parse_shard_id(value)
        .ok_or_else(|| ApiError::resource_not_found(format!("Could not find shard {value}.")))
}

/// A decimal hash key in [0, 2^128 − 1].
pub fn hash_key(value: &str, member: &str) -> Result<u128, ApiError> {
    let shaped = !value.is_empty()
        && value.len() <= 39
        && value.bytes().all(|b| b.is_ascii_digit())
        && (value == "0" || !value.starts_with('0'));
    if !shaped {
        return Err(ApiError::constraint(
            value,
            member,
            "Member must satisfy regular expression pattern: 0|([1-9]\\d{0,38})",
        ));
    }
    value.parse::<u128>().map_err(|_| {
        ApiError::invalid_argument(format!(
            "{member} {value} must be in the range: [0, 2^128-1]"
        ))
    })
}

pub fn partition_key(value: &str) -> Result<(), ApiError> {
    let chars = value.chars().count();
    if chars == 0 {
        return Err(ApiError::constraint(
            value,
            "partitionKey",
            "Member must have length greater than or equal to 1",
        ));
    }
    if chars > 256 {
        return Err(ApiError::constraint(
            value,
            "partitionKey",
            "Member must have length less than or equal to 256",
        ));
    }
    Ok(())
}

/// An integer member within `[min, max]`.
pub fn int_range(value: i64, member: &str, min: i64, max: i64) -> Result<i64, ApiError> {
    if value < min {
        return Err(ApiError::constraint(
            &value.to_string(),
            member,
            &format!("Member must have value greater than or equal to {min}"),
        ));
    }
    if value > max {
        return Err(ApiError::constraint(
            &value.to_string(),
            member,
            &format!("Member must have value less than or equal to {max}"),
        ));
    }
    Ok(value)
}

/// A paging token: 1 to 1048576 characters.
pub fn token(value: &str, member: &str) -> Result<(), ApiError> {
    if value.is_empty() || value.len() > 1_048_576 {
        return Err(ApiError::constraint(
            value,
            member,
            "Member must have length between 1 and 1048576",
        ));
    }
    Ok(())
}

pub fn required<T>(value: Option<T>, member: &str) -> Result<T, ApiError> {
    value.ok_or_else(|| ApiError::missing(member))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(stream_name("a.b_c-1").is_ok());
        assert_eq!(stream_name("").unwrap_err().code, "ValidationException");
        assert_eq!(stream_name("a b").unwrap_err().code, "ValidationException");
        assert_eq!(
            stream_name(&"a".repeat(129)).unwrap_err().code,
            "ValidationException"
        );
    }

    #[test]
    fn arns() {
        assert_eq!(
            stream_name_from_arn("arn:aws:kinesis:us-east-1:000000000000:stream/s1").unwrap(),
            "s1"
        );
        for bad in [
            "arn:aws:kinesis:us-east-1:0000:stream/s1",
            "arn:aws:sqs:us-east-1:000000000000:stream/s1",
            "arn:aws:kinesis:us-east-1:000000000000:table/s1",
            "arn:aws:kinesis:us-east-1:000000000000:stream/s1/consumer/c:1",
            "nonsense",
        ] {
            assert!(stream_name_from_arn(bad).is_err(), "{bad}");
        }
        assert_eq!(
            resolve_stream(None, None).unwrap_err().code,
            "InvalidArgumentException"
        );
        assert!(resolve_stream(
            Some("a"),
            Some("arn:aws:kinesis:us-east-1:000000000000:stream/b")
        )
        .is_err());
    }

    #[test]
    fn hash_keys() {
        assert_eq!(hash_key("0", "k").unwrap(), 0);
        assert_eq!(
            hash_key("340282366920938463463374607431768211455", "k").unwrap(),
            u128::MAX
        );
        assert_eq!(
            hash_key("340282366920938463463374607431768211456", "k")
                .unwrap_err()
                .code,
            "InvalidArgumentException"
        );
        assert_eq!(hash_key("-1", "k").unwrap_err().code, "ValidationException");
        assert_eq!(hash_key("01", "k").unwrap_err().code, "ValidationException");
    }

    #[test]
    fn partition_keys_count_characters() {
        assert!(partition_key(&"ü".repeat(256)).is_ok());
        assert!(partition_key(&"a".repeat(257)).is_err());
        assert!(partition_key("").is_err());
    }
}
