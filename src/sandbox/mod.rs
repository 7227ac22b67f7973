pub mod iamport;
