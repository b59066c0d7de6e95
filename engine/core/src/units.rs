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

/// `500M`, `20G`, `1.5T`, `1GiB`, `1024`: powers of 1024, for quotas, as sizes print
/// ([`format_bytes`]). `GB`, `MB`, `TB` and `kB` mean what they say, powers of 1000: a quota typed
/// as `50GB` is 50,000,000,000 bytes, not silently 50 GiB.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("{s:?} is not a size: use e.g. 500M, 20G or 1T"))?;
    let unit = unit.trim().to_ascii_lowercase();
    let decimal = unit.len() == 2 && unit.ends_with('b') && unit != "ib";
    let base: u64 = if decimal { 1000 } else { 1024 };
    let power = match unit.trim_end_matches("ib").trim_end_matches('b') {
        "" => 0,
        "k" => 1,
        "m" => 2,
        "g" => 3,
        "t" => 4,
        _ => return Err(format!("{s:?}: unknown unit {unit:?}; use K, M, G or T (GiB), or KB, MB, GB, TB")),
    };
    let v = n * base.pow(power) as f64;
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
        // Decimal units mean powers of 1000; a bare letter or an IEC unit, of 1024.
        assert_eq!(parse_size("50GB"), Ok(50_000_000_000));
        assert_eq!(parse_size("2MB"), Ok(2_000_000));
        assert_eq!(parse_size("1kB"), Ok(1000));
        assert_eq!(parse_size("50G"), Ok(50 << 30));
        assert_eq!(parse_size("50GiB"), Ok(50 << 30));
        assert_eq!(parse_size("7B"), Ok(7));
    }

    #[test]
    fn a_parsed_size_prints_in_the_same_units() {
        assert_eq!(format_bytes(parse_size("50G").unwrap()), "50.0 GiB");
        assert_eq!(format_bytes(parse_size("1.5T").unwrap()), "1.5 TiB");
        assert_eq!(format_bytes(1000), "1000 B");
        assert_eq!(format_bytes(1536), "1.5 KiB");
    }
}
