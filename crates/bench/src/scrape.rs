//! Reading agents' `/metrics` so benches can report server-side figures.

use std::collections::HashMap;

/// One scrape: `name{labels}` → value.
pub(crate) type Scrape = HashMap<String, f64>;

/// Fetches and parses an agent's Prometheus text.
pub(crate) async fn scrape(client: &reqwest::Client, base: &str) -> anyhow::Result<Scrape> {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    Ok(parse(&text))
}

pub(crate) fn parse(text: &str) -> Scrape {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// Sum over agents of how much `key` grew between two scrapes each.
pub(crate) fn delta(before: &[Scrape], after: &[Scrape], key: &str) -> f64 {
    before
        .iter()
        .zip(after)
        .map(|(b, a)| a.get(key).unwrap_or(&0.0) - b.get(key).unwrap_or(&0.0))
        .sum()
}

/// A quantile of a histogram from the growth of its cumulative buckets,
/// interpolated within the bucket (the usual Prometheus estimate).
pub(crate) fn histogram_quantile(
    before: &[Scrape],
    after: &[Scrape],
    name: &str,
    q: f64,
) -> Option<f64> {
    let prefix = format!("{name}_bucket{{le=\"");
    let mut bounds: Vec<(f64, f64)> = after
        .first()?
        .keys()
        .filter_map(|k| {
            let le = k.strip_prefix(&prefix)?.strip_suffix("\"}")?;
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((bound, delta(before, after, k)))
        })
        .collect();
    bounds.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = bounds.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut prev = (0.0, 0.0);
    for &(bound, count) in &bounds {
        if count >= rank {
            if bound.is_infinite() {
                return Some(prev.0);
            }
            let within = (rank - prev.1) / (count - prev.1).max(f64::MIN_POSITIVE);
            return Some(prev.0 + (bound - prev.0) * within);
        }
        prev = (bound, count);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_within_buckets() {
        let before = vec![parse(
            "h_bucket{le=\"0.01\"} 0\nh_bucket{le=\"0.02\"} 0\nh_bucket{le=\"+Inf\"} 0\n",
        )];
        let after = vec![parse(
            "h_bucket{le=\"0.01\"} 50\nh_bucket{le=\"0.02\"} 100\nh_bucket{le=\"+Inf\"} 100\n",
        )];
        let p50 = histogram_quantile(&before, &after, "h", 0.5).unwrap();
        assert!((p50 - 0.01).abs() < 1e-9);
        let p75 = histogram_quantile(&before, &after, "h", 0.75).unwrap();
        assert!((p75 - 0.015).abs() < 1e-9);
    }
}
