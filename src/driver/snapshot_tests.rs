//! Snapshots through the driver: two drivers and an in-memory world.
