//! OWNER: helper — placeholder until implemented.
