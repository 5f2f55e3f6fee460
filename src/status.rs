//! OWNER: coordinator helper — placeholder until implemented.
