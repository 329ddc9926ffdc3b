//! Integration tests: mock_lever.
