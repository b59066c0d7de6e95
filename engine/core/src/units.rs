//! Sizes for people, one system everywhere (the CLI, the app, the HTTP API's text): powers
//! of 1024, written as KiB, MiB, GiB and TiB, and read from `500M`, `20G`, `1.5T`, `1GiB` or
//! plain bytes. A quota of `50G` shows as "50.0 GiB", never as "53.7 GB".

/// Bytes as people read them: "512 B", "1.5 KiB", "50.0 GiB".
pub fn format_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[i]) }
}

/// `500M`, `20G`, `1.5T`, `1GiB`, `1024`: powers of 1024, for quotas.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("{s:?} is not a size: use e.g. 500M, 20G or 1T"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().trim_end_matches("ib").trim_end_matches('b') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return Err(format!("{s:?}: unknown unit {unit:?}; use K, M, G or T")),
    };
    let v = n * mult as f64;
    if !(v >= 1.0 && v < u64::MAX as f64) {
        return Err(format!("{s:?} is not a usable size"));
    }
    Ok(v as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("500M"), Ok(500 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("1.5k"), Ok(1536));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("3X").is_err());
        assert!(parse_size("0").is_err());
    }

    #[test]
    fn a_parsed_size_prints_in_the_same_units() {
        assert_eq!(format_bytes(parse_size("50G").unwrap()), "50.0 GiB");
        assert_eq!(format_bytes(parse_size("1.5T").unwrap()), "1.5 TiB");
        assert_eq!(format_bytes(1000), "1000 B");
        assert_eq!(format_bytes(1536), "1.5 KiB");
    }
}
