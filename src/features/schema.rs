//! The preprocessing schema: which column is the label, which are numeric, categorical or
//! ignored, and which strings mean "missing". Auto MPG's is built in; any other tabular
//! regression data set works by passing its own.

use std::collections::HashSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// What a column is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Label,
    Numeric,
    Categorical,
    Ignored,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schema {
    /// Every column of a header-less file, in file order. A file with a header row may order
    /// its columns differently: they are matched by name.
    pub columns: Vec<String>,
    pub label: String,
    #[serde(default)]
    pub numeric: Vec<String>,
    #[serde(default)]
    pub categorical: Vec<String>,
    #[serde(default)]
    pub ignored: Vec<String>,
    /// Field values (after trimming spaces) that mean "missing". An empty field is always missing.
    #[serde(default = "default_missing_markers")]
    pub missing_markers: Vec<String>,
}

fn default_missing_markers() -> Vec<String> {
    vec!["?".to_string()]
}

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("cannot read the schema `{}`: {source}", path.display())]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the schema `{}` is not valid: {source}", path.display())]
    Parse {
        path: std::path::PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("schema: {0}")]
    Invalid(String),
}

impl Schema {
    /// Auto MPG (UCI): predict `mpg`; `origin` is a code for a region, so it is one-hot encoded.
    pub fn auto_mpg() -> Self {
        let names = |xs: &[&str]| xs.iter().map(|s| (*s).to_string()).collect::<Vec<_>>();
        Self {
            columns: names(&[
                "mpg",
                "cylinders",
                "displacement",
                "horsepower",
                "weight",
                "acceleration",
                "model year",
                "origin",
                "car name",
            ]),
            label: "mpg".into(),
            numeric: names(&["cylinders", "displacement", "horsepower", "weight", "acceleration", "model year"]),
            categorical: names(&["origin"]),
            ignored: names(&["car name"]),
            missing_markers: default_missing_markers(),
        }
    }

    pub fn load(path: &Path) -> Result<Self, SchemaError> {
        let text = std::fs::read(path).map_err(|source| SchemaError::Read { path: path.into(), source })?;
        let schema: Self =
            serde_json::from_slice(&text).map_err(|source| SchemaError::Parse { path: path.into(), source })?;
        schema.validate()?;
        Ok(schema)
    }

    /// Every column has exactly one role, and every role names a declared column.
    pub fn validate(&self) -> Result<(), SchemaError> {
        let invalid = |m: String| Err(SchemaError::Invalid(m));
        if self.columns.is_empty() {
            return invalid("`columns` is empty; list every column of the input in file order".into());
        }
        let mut seen = HashSet::new();
        for column in &self.columns {
            if !seen.insert(normalize(column)) {
                return invalid(format!("`columns` names `{column}` twice"));
            }
        }
        let declared: HashSet<_> = self.columns.iter().map(|c| normalize(c)).collect();
        let mut roles = std::collections::HashMap::new();
        let listed = std::iter::once((Role::Label, &self.label))
            .chain(self.numeric.iter().map(|c| (Role::Numeric, c)))
            .chain(self.categorical.iter().map(|c| (Role::Categorical, c)))
            .chain(self.ignored.iter().map(|c| (Role::Ignored, c)));
        for (role, column) in listed {
            if !declared.contains(&normalize(column)) {
                return invalid(format!(
                    "`{}` names `{column}`, which is not in `columns`. Given columns: {}",
                    role_field(role),
                    self.columns.join(", ")
                ));
            }
            if let Some(previous) = roles.insert(normalize(column), role) {
                return invalid(format!(
                    "`{column}` is in both `{}` and `{}`; a column has one role",
                    role_field(previous),
                    role_field(role)
                ));
            }
        }
        if let Some(column) = self.columns.iter().find(|c| !roles.contains_key(&normalize(c))) {
            return invalid(format!("column `{column}` has no role: add it to `numeric`, `categorical` or `ignored`"));
        }
        if self.numeric.is_empty() && self.categorical.is_empty() {
            return invalid("no feature columns: `numeric` and `categorical` are both empty".into());
        }
        Ok(())
    }

    /// The role of each column in `columns` order.
    pub fn roles(&self) -> Vec<Role> {
        self.columns
            .iter()
            .map(|c| {
                let c = normalize(c);
                if normalize(&self.label) == c {
                    Role::Label
                } else if self.numeric.iter().any(|n| normalize(n) == c) {
                    Role::Numeric
                } else if self.categorical.iter().any(|n| normalize(n) == c) {
                    Role::Categorical
                } else {
                    Role::Ignored
                }
            })
            .collect()
    }

    pub fn is_missing(&self, field: &[u8]) -> bool {
        field.is_empty() || self.missing_markers.iter().any(|m| m.as_bytes() == field)
    }
}

fn role_field(role: Role) -> &'static str {
    match role {
        Role::Label => "label",
        Role::Numeric => "numeric",
        Role::Categorical => "categorical",
        Role::Ignored => "ignored",
    }
}

/// Column names match regardless of case and surrounding spaces.
pub fn normalize(name: &str) -> String {
    name.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_mpg_schema_is_valid() {
        let schema = Schema::auto_mpg();
        schema.validate().unwrap();
        assert_eq!(schema.roles()[0], Role::Label);
        assert_eq!(schema.roles()[7], Role::Categorical);
        assert_eq!(schema.roles()[8], Role::Ignored);
    }

    #[test]
    fn rejects_unknown_duplicate_and_roleless_columns() {
        let mut s = Schema::auto_mpg();
        s.numeric.push("colour".into());
        assert!(s.validate().unwrap_err().to_string().contains("`colour`, which is not in `columns`"));
        let mut s = Schema::auto_mpg();
        s.ignored.push("origin".into());
        assert!(s.validate().unwrap_err().to_string().contains("both `categorical` and `ignored`"));
        let mut s = Schema::auto_mpg();
        s.ignored.clear();
        assert!(s.validate().unwrap_err().to_string().contains("`car name` has no role"));
    }
}
