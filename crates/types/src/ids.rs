//! Application-generated identifiers (UUIDv7 as text): portable across SQLite and
//! PostgreSQL and sortable by creation time.

/// A new time-ordered identifier, e.g. `0193a1f2-...`.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_unique_and_time_ordered() {
        let a = super::new_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = super::new_id();
        assert_ne!(a, b);
        assert!(a < b, "{a} should sort before {b}");
    }
}
