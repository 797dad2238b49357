//! What this program tells its user: flags in error messages (`flags`), the library's values as
//! JSON (`json`), the JSON records of a command (`summary`) and the human summaries (`human`).
//! Only this program knows its wire formats: the library derives no `Serialize`.

pub(crate) mod flags;
pub(crate) mod human;
pub(crate) mod json;
pub(crate) mod summary;
