//! (section being written)

use crate::table::Table;
use crate::Size;

pub async fn run(_size: Size, _table: &mut Table) {}
