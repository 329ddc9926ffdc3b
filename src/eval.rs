//! (skeleton) ranking-quality measurement on the real data sets in ../shared/data.
