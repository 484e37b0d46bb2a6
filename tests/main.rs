//! The integration suite (filled below).
