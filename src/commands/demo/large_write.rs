//! How `sfpg demo` shows a large write through the proxy: a CSV file of leads, more than one
//! atomic push may hold, which psql's `\copy` loads into Salesforce through a Bulk API 2.0
//! ingest job under `sfpg.bulk_writes = auto`. One lead's email is no address, so the
//! COMMIT's WARNING shows what an exact, non-atomic outcome looks like.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// More than the 1,000 records one atomic push may hold, so `auto` goes through Bulk (the
/// printed comment says 1,500).
const LEADS: usize = 1_500;
const _: () = assert!(LEADS > 1_000, "the example must not fit one atomic push");
/// The lead Salesforce refuses (`INVALID_EMAIL_ADDRESS`).
const REFUSED: usize = 750;

/// The file's columns, as `\copy` names them.
const COLUMNS: &str = "lastname, company, status, email";

/// The example: the CSV file written into the demo's directory, and the lines to type.
#[derive(Debug)]
pub struct LargeWrite {
    pub setting: String,
    pub copy: String,
}

impl LargeWrite {
    /// Writes `leads.csv` into `dir` (readable by any psql user: the demo may run as root
    /// while its user's psql reads the file) and says how to load it.
    pub fn prepare(dir: &Path, schema: &str) -> anyhow::Result<LargeWrite> {
        let path = dir.join("leads.csv");
        write_leads(&path)?;
        Ok(LargeWrite {
            setting: "SET sfpg.bulk_writes = auto;".to_owned(),
            copy: format!(
                "\\copy {schema}.lead ({COLUMNS}) FROM '{}' CSV HEADER",
                path.display()
            ),
        })
    }

    /// The lines the demo prints.
    pub fn render(&self) -> String {
        format!(
            "  -- a large write: 1,500 leads from a CSV file, created in Salesforce by one Bulk API 2.0\n  \
             -- ingest job. Past 1,000 records a write cannot be all-or-none: Salesforce keeps what it\n  \
             -- accepts, and the COMMIT's WARNING names what it refused (here one lead's email),\n  \
             -- which the table sfpg.write_failures lists:\n  \
             {}\n  {}\n",
            self.setting, self.copy
        )
    }
}

fn leads_csv() -> String {
    let mut text = format!("{}\n", COLUMNS.replace(' ', ""));
    for n in 1..=LEADS {
        let email = if n == REFUSED {
            "not-an-email".to_owned()
        } else {
            format!("lead{n}@example.com")
        };
        // Infallible: writing into a String.
        let _ = writeln!(
            text,
            "Bulk lead {n},Demo Company {n},Open - Not Contacted,{email}"
        );
    }
    text
}

fn write_leads(path: &PathBuf) -> anyhow::Result<()> {
    std::fs::write(path, leads_csv())
        .with_context(|| format!("cannot write {}", path.display()))?;
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .with_context(|| format!("cannot set the permissions of {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_holds_a_header_and_one_refusable_lead_among_more_than_an_atomic_push() {
        let text = leads_csv();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "lastname,company,status,email");
        assert_eq!(lines.len(), LEADS + 1);
        let refused: Vec<&&str> = lines
            .iter()
            .filter(|l| l.ends_with(",not-an-email"))
            .collect();
        assert_eq!(refused.len(), 1);
    }

    #[test]
    fn the_copy_line_names_the_file_written() {
        let dir = tempfile::tempdir().unwrap();
        let example = LargeWrite::prepare(dir.path(), "salesforce").unwrap();
        let path = dir.path().join("leads.csv");
        assert!(
            example
                .copy
                .starts_with("\\copy salesforce.lead (lastname, company, status, email) FROM '")
        );
        assert!(example.copy.contains(&path.display().to_string()));
        assert_eq!(std::fs::read_to_string(path).unwrap(), leads_csv());
        let printed = example.render();
        assert!(printed.contains("SET sfpg.bulk_writes = auto;\n"));
        assert!(printed.contains(&format!("{},{:03} leads", LEADS / 1000, LEADS % 1000)));
    }
}
