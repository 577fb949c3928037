//! EFI system partition (placeholder, being written).
