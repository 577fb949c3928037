//! GPT disk (placeholder, being written).
