//! Cross-store tests: snapshot, restore and rescale of keyed and operator state.
