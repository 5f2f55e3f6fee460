pub use weir;
