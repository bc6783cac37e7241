//! The gateway half of the fake Discord: a loopback websocket server for twilight-gateway.
