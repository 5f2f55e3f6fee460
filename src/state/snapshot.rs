//! OWNER: state helper — placeholder until implemented.
