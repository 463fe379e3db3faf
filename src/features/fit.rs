//! The transform, fitted on training rows only: median imputation then z-score scaling for
//! numeric columns (population standard deviation, as scikit-learn's `StandardScaler`; a
//! constant column is scaled by 1), one-hot encoding for categorical columns (the categories
//! seen in training; an unseen or missing category encodes as all zeros).

use serde::{Deserialize, Serialize};

use super::schema::{Role, Schema};
use super::table::{MISSING_CODE, Table};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FittedColumn {
    Numeric {
        name: String,
        /// Replaces a missing value.
        median: f64,
        /// Of the imputed training values.
        mean: f64,
        std: f64,
        /// The divisor: `std`, or 1 when `std` is 0.
        scale: f64,
    },
    Categorical {
        name: String,
        /// One output feature each, in this order.
        categories: Vec<String>,
    },
}

/// Everything needed to turn a raw row into model features again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedTransform {
    pub label: String,
    /// Feature columns in schema order.
    pub columns: Vec<FittedColumn>,
    /// Output feature names, in the order written: numeric `name`, one-hot `name=category`.
    pub feature_names: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FitError {
    #[error("column `{column}` has no value in the {rows} training rows: nothing to impute with")]
    NoValues { column: String, rows: usize },
}

impl FittedTransform {
    pub fn fit(schema: &Schema, table: &Table, train_rows: &[u32]) -> Result<Self, FitError> {
        let mut columns = Vec::new();
        let (mut n, mut c) = (0, 0);
        for (name, role) in schema.columns.iter().zip(schema.roles()) {
            match role {
                Role::Numeric => {
                    columns.push(fit_numeric(name, &table.numeric[n], train_rows)?);
                    n += 1;
                }
                Role::Categorical => {
                    let column = &table.categorical[c];
                    let mut seen = vec![false; column.values.len()];
                    for &row in train_rows {
                        let code = column.codes[row as usize];
                        if code != MISSING_CODE {
                            seen[code as usize] = true;
                        }
                    }
                    let mut categories: Vec<String> =
                        column.values.iter().zip(seen).filter(|(_, s)| *s).map(|(v, _)| v.clone()).collect();
                    sort_categories(&mut categories);
                    columns.push(FittedColumn::Categorical { name: name.clone(), categories });
                    c += 1;
                }
                Role::Label | Role::Ignored => {}
            }
        }
        let feature_names = columns
            .iter()
            .flat_map(|column| match column {
                FittedColumn::Numeric { name, .. } => vec![name.clone()],
                FittedColumn::Categorical { name, categories } => {
                    categories.iter().map(|cat| format!("{name}={cat}")).collect()
                }
            })
            .collect();
        Ok(Self { label: schema.label.clone(), columns, feature_names })
    }

    pub fn feature_count(&self) -> usize {
        self.feature_names.len()
    }
}

fn fit_numeric(name: &str, values: &[f64], train_rows: &[u32]) -> Result<FittedColumn, FitError> {
    let mut present: Vec<f64> = train_rows.iter().map(|&r| values[r as usize]).filter(|v| !v.is_nan()).collect();
    if present.is_empty() {
        return Err(FitError::NoValues { column: name.to_string(), rows: train_rows.len() });
    }
    let median = median(&mut present);
    drop(present);
    let imputed = |r: &u32| {
        let v = values[*r as usize];
        if v.is_nan() { median } else { v }
    };
    let count = train_rows.len() as f64;
    let mean = train_rows.iter().map(imputed).sum::<f64>() / count;
    let variance = train_rows.iter().map(|r| (imputed(r) - mean).powi(2)).sum::<f64>() / count;
    let std = variance.sqrt();
    let scale = if std > 0.0 && std.is_finite() { std } else { 1.0 };
    Ok(FittedColumn::Numeric { name: name.to_string(), median, mean, std, scale })
}

/// The median as numpy computes it: the mean of the two middle values for an even count.
fn median(values: &mut [f64]) -> f64 {
    let mid = values.len() / 2;
    let (_, &mut upper, _) = values.select_nth_unstable_by(mid, f64::total_cmp);
    if values.len() % 2 == 1 {
        upper
    } else {
        let lower = values[..mid].iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (lower + upper) / 2.0
    }
}

/// Numeric order when every category is a number ("2" before "10"), text order otherwise.
fn sort_categories(categories: &mut [String]) {
    let numbers: Option<Vec<f64>> = categories.iter().map(|c| c.parse::<f64>().ok()).collect();
    if numbers.is_some() {
        categories.sort_by(|a, b| a.parse::<f64>().unwrap().total_cmp(&b.parse::<f64>().unwrap()));
    } else {
        categories.sort();
    }
}

/// Applies a fitted transform to rows of a [`Table`], writing CSV fields.
pub struct TableEncoder<'a> {
    fitted: &'a FittedTransform,
    table: &'a Table,
    /// Per categorical column: table code -> index among the fitted categories.
    one_hot: Vec<Vec<Option<usize>>>,
}

impl<'a> TableEncoder<'a> {
    pub fn new(fitted: &'a FittedTransform, table: &'a Table) -> Self {
        let mut categorical = table.categorical.iter();
        let one_hot = fitted
            .columns
            .iter()
            .filter_map(|column| match column {
                FittedColumn::Categorical { categories, .. } => {
                    let column = categorical.next().expect("fitted from this table");
                    Some(column.values.iter().map(|v| categories.iter().position(|c| c == v)).collect())
                }
                FittedColumn::Numeric { .. } => None,
            })
            .collect();
        Self { fitted, table, one_hot }
    }

    /// Append `label,` (when asked) and the row's features, comma-separated, and a newline.
    /// Features are written as the shortest text of their f32 value: XGBoost reads f32.
    pub fn write_row(&self, row: u32, with_label: bool, out: &mut Vec<u8>) {
        let row = row as usize;
        let mut float = ryu::Buffer::new();
        let mut first = true;
        let mut sep = |out: &mut Vec<u8>| {
            if !std::mem::take(&mut first) {
                out.push(b',');
            }
        };
        if with_label {
            sep(out);
            out.extend_from_slice(float.format(self.table.labels[row]).as_bytes());
        }
        let (mut n, mut c) = (0, 0);
        for column in &self.fitted.columns {
            match column {
                FittedColumn::Numeric { median, mean, scale, .. } => {
                    let raw = self.table.numeric[n][row];
                    let value = if raw.is_nan() { *median } else { raw };
                    sep(out);
                    out.extend_from_slice(float.format(((value - mean) / scale) as f32).as_bytes());
                    n += 1;
                }
                FittedColumn::Categorical { categories, .. } => {
                    let code = self.table.categorical[c].codes[row];
                    let hot = if code == MISSING_CODE { None } else { self.one_hot[c][code as usize] };
                    for k in 0..categories.len() {
                        sep(out);
                        out.push(if hot == Some(k) { b'1' } else { b'0' });
                    }
                    c += 1;
                }
            }
        }
        out.push(b'\n');
    }
}

impl FittedTransform {
    /// Features of one raw row given as `(column, field)` pairs, as the preprocessor writes
    /// them: how batch inference reapplies the transform. Missing columns and missing markers
    /// are missing values; an unparsable number is an error naming the column.
    pub fn apply<'f>(
        &self,
        fields: impl Fn(&str) -> Option<&'f str>,
        missing_markers: &[String],
    ) -> Result<Vec<f32>, String> {
        let is_missing = |v: &str| v.is_empty() || missing_markers.iter().any(|m| m == v);
        let mut out = Vec::with_capacity(self.feature_count());
        for column in &self.columns {
            match column {
                FittedColumn::Numeric { name, median, mean, scale, .. } => {
                    let value = match fields(name).map(str::trim) {
                        None => *median,
                        Some(v) if is_missing(v) => *median,
                        Some(v) => v.parse::<f64>().map_err(|_| format!("column `{name}`: `{v}` is not a number"))?,
                    };
                    out.push(((value - mean) / scale) as f32);
                }
                FittedColumn::Categorical { name, categories } => {
                    let value = fields(name).map(str::trim);
                    out.extend(categories.iter().map(|c| f32::from(u8::from(value == Some(c.as_str())))));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::table::Table;

    #[test]
    fn median_matches_numpy() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&mut [5.0]), 5.0);
    }

    #[test]
    fn numeric_fit_uses_only_the_given_rows_and_imputes_first() {
        let values = [1.0, f64::NAN, 3.0, 1000.0];
        let FittedColumn::Numeric { median, mean, std, scale, .. } = fit_numeric("x", &values, &[0, 1, 2]).unwrap()
        else {
            unreachable!()
        };
        assert_eq!(median, 2.0);
        assert_eq!(mean, 2.0);
        assert!((std - (2.0f64 / 3.0).sqrt()).abs() < 1e-15);
        assert_eq!(scale, std);
        let FittedColumn::Numeric { scale, .. } = fit_numeric("x", &[5.0, 5.0], &[0, 1]).unwrap() else {
            unreachable!()
        };
        assert_eq!(scale, 1.0);
        assert!(fit_numeric("x", &[f64::NAN, 1.0], &[0]).is_err());
    }

    #[test]
    fn categories_sort_naturally() {
        let mut cats = vec!["10".to_string(), "2".into(), "1".into()];
        sort_categories(&mut cats);
        assert_eq!(cats, ["1", "2", "10"]);
    }

    #[test]
    fn apply_on_raw_fields_matches_what_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.csv");
        std::fs::write(&path, "18,8,307,130,3504,12,70,1,a\n20,4,97,?,2130,14.5,71,3,b\n30,4,90,70,2000,16,72,2,c\n")
            .unwrap();
        let schema = Schema::auto_mpg();
        let table = Table::read(&schema, &[path]).unwrap();
        let fitted = FittedTransform::fit(&schema, &table, &[0, 1]).unwrap();
        let encoder = TableEncoder::new(&fitted, &table);
        let raw = [
            ("cylinders", "4"),
            ("displacement", "90"),
            ("horsepower", "70"),
            ("weight", "2000"),
            ("acceleration", "16"),
            ("model year", "72"),
            ("origin", "2"),
        ];
        let applied =
            fitted.apply(|c| raw.iter().find(|(k, _)| *k == c).map(|(_, v)| *v), &schema.missing_markers).unwrap();
        let mut written = Vec::new();
        encoder.write_row(2, false, &mut written);
        let written: Vec<f32> =
            std::str::from_utf8(&written).unwrap().trim().split(',').map(|v| v.parse().unwrap()).collect();
        assert_eq!(applied, written);
        // origin=2 was not seen in training: all zeros.
        assert_eq!(&applied[6..], &[0.0, 0.0]);
        assert_eq!(fitted.feature_names.len(), 8);
    }
}
