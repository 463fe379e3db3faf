//! Per-column statistics in one pass, and `statistics.json` in Model Monitor's layout.
//!
//! Every value is classified (see `infer`); numbers feed the moments and the KLL sketch
//! whatever the column's final type, since a column is numeric only if every present value is
//! a number. Mean is sum / count and the standard deviation is the population one (Deequ's
//! `Mean` and `StandardDeviation`).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::distinct::ValueCounts;
use super::infer::{self, DataType, TypeCounts, ValueClass};
use super::kll::{Bucket, Sketch};

/// Deequ's `ColumnProfiler.DEFAULT_CARDINALITY_THRESHOLD`: the histogram (categorical buckets)
/// of a column is kept when it has at most this many distinct values.
pub const HISTOGRAM_LIMIT: usize = 120;

/// One value of one row.
#[derive(Debug, Clone, Copy)]
pub enum Cell<'a> {
    Null,
    /// Text, classified by Deequ's regexes (CSV fields, JSON and Parquet strings).
    Text(&'a str),
    /// A typed number (JSON numbers, Parquet numeric columns) with its text.
    Number {
        value: f64,
        class: ValueClass,
        text: &'a str,
    },
    /// A typed boolean (JSON, Parquet).
    Boolean(bool),
}

/// Running sums of a column's numbers.
#[derive(Debug, Clone)]
struct Moments {
    count: u64,
    sum: f64,
    mean: f64,
    m2: f64,
    min: f64,
    max: f64,
}

impl Default for Moments {
    fn default() -> Self {
        Self { count: 0, sum: 0.0, mean: 0.0, m2: 0.0, min: f64::INFINITY, max: f64::NEG_INFINITY }
    }
}

impl Moments {
    fn add(&mut self, x: f64) {
        self.count += 1;
        self.sum += x;
        // Welford's update for the variance.
        let delta = x - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (x - self.mean);
        self.min = self.min.min(x);
        self.max = self.max.max(x);
    }
}

/// Everything measured of one column.
#[derive(Debug, Clone)]
pub struct ColumnProfile {
    pub name: String,
    pub types: TypeCounts,
    moments: Moments,
    pub sketch: Sketch,
    pub values: ValueCounts,
    /// A baseline's domain for this column, and the present values found in it.
    domain: Option<HashSet<Box<str>>>,
    in_domain: u64,
}

impl ColumnProfile {
    pub fn new(name: String) -> Self {
        Self {
            name,
            types: TypeCounts::default(),
            moments: Moments::default(),
            sketch: Sketch::new(),
            values: ValueCounts::default(),
            domain: None,
            in_domain: 0,
        }
    }

    /// Count the values inside `domain` as they are read (for `categorical_values_check`).
    pub fn with_domain(mut self, domain: Option<HashSet<Box<str>>>) -> Self {
        self.domain = domain;
        self
    }

    /// Share of the present values inside the domain given, if one was.
    pub fn domain_share(&self) -> Option<f64> {
        let present = self.present();
        (self.domain.is_some() && present > 0).then(|| self.in_domain as f64 / present as f64)
    }

    pub fn add(&mut self, cell: Cell<'_>) {
        let (class, number, text) = match cell {
            Cell::Null => {
                self.types.add(None);
                return;
            }
            Cell::Text(text) => {
                let class = infer::classify(text);
                let number = match class {
                    ValueClass::Fractional | ValueClass::Integral => infer::number(text),
                    _ => None,
                };
                // A number too large for a double (`1e999`) cannot be a number here.
                let class = if number.is_none() && matches!(class, ValueClass::Fractional | ValueClass::Integral) {
                    ValueClass::String
                } else {
                    class
                };
                (class, number, text)
            }
            Cell::Number { value, class, text } => (class, Some(value), text),
            Cell::Boolean(b) => (ValueClass::Boolean, None, if b { "true" } else { "false" }),
        };
        self.types.add(Some(class));
        if let Some(x) = number {
            self.moments.add(x);
            self.sketch.update(x);
        }
        self.values.add(text);
        if self.domain.as_ref().is_some_and(|d| d.contains(text)) {
            self.in_domain += 1;
        }
    }

    pub fn data_type(&self) -> DataType {
        self.types.column_type()
    }

    pub fn present(&self) -> u64 {
        self.types.present()
    }

    /// Present values over all rows (1 for a data set without rows).
    pub fn completeness(&self, rows: u64) -> f64 {
        if rows == 0 { 1.0 } else { self.present() as f64 / rows as f64 }
    }

    /// Category counts, most frequent first, when the column has few enough values.
    pub fn categories(&self) -> Option<Vec<(&str, u64)>> {
        self.values.exact(HISTOGRAM_LIMIT)
    }

    pub fn min(&self) -> Option<f64> {
        (self.moments.count > 0).then_some(self.moments.min)
    }

    pub fn statistics(&self, rows: u64) -> FeatureStatistics {
        let common = Common { num_present: self.present(), num_missing: rows - self.present() };
        let data_type = self.data_type();
        let m = &self.moments;
        if data_type.is_numeric() && m.count > 0 {
            let (c, k) = self.sketch.parameters();
            return FeatureStatistics {
                name: self.name.clone(),
                inferred_type: data_type,
                numerical_statistics: Some(NumericalStatistics {
                    common,
                    mean: m.sum / m.count as f64,
                    sum: m.sum,
                    std_dev: (m.m2 / m.count as f64).sqrt(),
                    min: m.min,
                    max: m.max,
                    distribution: NumericDistribution {
                        kll: KllDistribution {
                            buckets: self.sketch.buckets(m.min, m.max),
                            sketch: SketchJson { parameters: SketchParameters { c, k }, data: self.sketch.levels() },
                        },
                    },
                }),
                string_statistics: None,
            };
        }
        let distribution = self.categories().map(|categories| CategoricalDistribution {
            categorical: Categorical {
                buckets: categories.into_iter().map(|(value, count)| Category { value: value.into(), count }).collect(),
            },
        });
        FeatureStatistics {
            name: self.name.clone(),
            inferred_type: data_type,
            numerical_statistics: None,
            string_statistics: Some(StringStatistics { common, distinct_count: self.values.distinct(), distribution }),
        }
    }
}

/// `statistics.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Statistics {
    pub version: f64,
    pub dataset: Dataset,
    pub features: Vec<FeatureStatistics>,
}

impl Statistics {
    pub fn new(rows: u64, columns: &[ColumnProfile]) -> Self {
        Self {
            version: 0.0,
            dataset: Dataset { item_count: rows },
            features: columns.iter().map(|c| c.statistics(rows)).collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Dataset {
    pub item_count: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct FeatureStatistics {
    pub name: String,
    pub inferred_type: DataType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub numerical_statistics: Option<NumericalStatistics>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub string_statistics: Option<StringStatistics>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Common {
    pub num_present: u64,
    pub num_missing: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct NumericalStatistics {
    pub common: Common,
    pub mean: f64,
    pub sum: f64,
    pub std_dev: f64,
    pub min: f64,
    pub max: f64,
    pub distribution: NumericDistribution,
}

#[derive(Debug, Clone, Serialize)]
pub struct NumericDistribution {
    pub kll: KllDistribution,
}

#[derive(Debug, Clone, Serialize)]
pub struct KllDistribution {
    pub buckets: Vec<Bucket>,
    pub sketch: SketchJson,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SketchJson {
    pub parameters: SketchParameters,
    pub data: Vec<Vec<f64>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SketchParameters {
    pub c: f64,
    pub k: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StringStatistics {
    pub common: Common,
    pub distinct_count: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distribution: Option<CategoricalDistribution>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CategoricalDistribution {
    pub categorical: Categorical,
}

#[derive(Debug, Clone, Serialize)]
pub struct Categorical {
    pub buckets: Vec<Category>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Category {
    pub value: String,
    pub count: u64,
}

// --- A baseline `statistics.json`, read back: only what the drift check needs ---------------

/// The parts of a baseline `statistics.json` the check reads: names, types, and the sketches
/// and category counts found at their paths (anything else in the file is not looked at).
#[derive(Debug, Clone, Deserialize)]
pub struct BaselineStatistics {
    pub features: Vec<BaselineFeature>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BaselineFeature {
    pub name: String,
    pub inferred_type: DataType,
    #[serde(default)]
    numerical_statistics: serde_json::Value,
    #[serde(default)]
    string_statistics: serde_json::Value,
}

/// One `distribution.categorical.buckets` entry (counts as integers or floats).
#[derive(Debug, Clone, Deserialize)]
pub struct BaselineCategory {
    pub value: String,
    pub count: f64,
}

impl BaselineFeature {
    /// The feature's sketch, rebuilt, if it has one.
    pub fn sketch(&self) -> Result<Option<Sketch>, String> {
        let corrupt = |e: String| format!("feature `{}`: the KLL sketch is corrupt: {e}", self.name);
        let Some(json) = self.numerical_statistics.pointer("/distribution/kll/sketch") else { return Ok(None) };
        let json = SketchJson::deserialize(json).map_err(|e| corrupt(e.to_string()))?;
        Sketch::from_levels(json.parameters.k, json.parameters.c, json.data).map(Some).map_err(corrupt)
    }

    /// The feature's category counts, if it has them.
    pub fn categories(&self) -> Result<Option<Vec<BaselineCategory>>, String> {
        let Some(json) = self.string_statistics.pointer("/distribution/categorical/buckets") else { return Ok(None) };
        Vec::<BaselineCategory>::deserialize(json)
            .map(Some)
            .map_err(|e| format!("feature `{}`: the categorical buckets are corrupt: {e}", self.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_numbers_and_strings() {
        let mut x = ColumnProfile::new("x".into());
        for text in ["1", "2.5", "", "4"] {
            x.add(if text.is_empty() { Cell::Null } else { Cell::Text(text) });
        }
        let stats = x.statistics(4);
        assert_eq!(stats.inferred_type, DataType::Fractional);
        let n = stats.numerical_statistics.unwrap();
        assert_eq!((n.common.num_present, n.common.num_missing), (3, 1));
        assert_eq!((n.sum, n.min, n.max), (7.5, 1.0, 4.0));
        assert!((n.mean - 2.5).abs() < 1e-15);
        assert!((n.std_dev - 1.5f64.sqrt()).abs() < 1e-12);
        assert_eq!(n.distribution.kll.sketch.data, vec![vec![1.0, 2.5, 4.0]]);

        let mut s = ColumnProfile::new("s".into());
        for text in ["a", "7", "a", "b"] {
            s.add(Cell::Text(text));
        }
        let stats = s.statistics(4);
        assert_eq!(stats.inferred_type, DataType::String);
        let st = stats.string_statistics.unwrap();
        assert_eq!(st.distinct_count, 3.0);
        let buckets = &st.distribution.unwrap().categorical.buckets;
        assert_eq!((buckets[0].value.as_str(), buckets[0].count), ("a", 2));
    }
}
