//! A small pool of PostgreSQL connections: one per load in flight.

use std::sync::Mutex;

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::{Client, NoTls};

use crate::error::{LoaderError, Result};

pub struct PgPool {
    url: String,
    /// Run on every new connection.
    session_setup: &'static str,
    idle: Mutex<Vec<Client>>,
    permits: Semaphore,
}

/// A connection, returned to the pool when dropped (unless it broke).
pub struct PooledClient<'a> {
    client: Option<Client>,
    pool: &'a PgPool,
    _permit: SemaphorePermit<'a>,
}

impl PgPool {
    /// Checks the URL by opening one connection now.
    pub async fn connect(
        url: &str,
        max_connections: usize,
        session_setup: &'static str,
    ) -> Result<PgPool> {
        let pool = PgPool {
            url: url.to_string(),
            session_setup,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(max_connections.max(1)),
        };
        let first = pool.open().await?;
        pool.idle.lock().expect("pool lock").push(first);
        Ok(pool)
    }

    pub async fn get(&self) -> Result<PooledClient<'_>> {
        let permit = self
            .permits
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let idle = self.idle.lock().expect("pool lock").pop();
        let client = match idle {
            Some(client) if !client.is_closed() => client,
            _ => self.open().await?,
        };
        Ok(PooledClient {
            client: Some(client),
            pool: self,
            _permit: permit,
        })
    }

    async fn open(&self) -> Result<Client> {
        let (client, connection) = tokio_postgres::connect(&self.url, NoTls)
            .await
            .map_err(LoaderError::postgres("connecting to the warehouse"))?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::warn!(%error, "warehouse connection ended");
            }
        });
        client
            .batch_execute(self.session_setup)
            .await
            .map_err(LoaderError::postgres("setting up the session"))?;
        Ok(client)
    }
}

impl std::ops::Deref for PooledClient<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client.as_ref().expect("present until drop")
    }
}

impl std::ops::DerefMut for PooledClient<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client.as_mut().expect("present until drop")
    }
}

impl Drop for PooledClient<'_> {
    fn drop(&mut self) {
        if let Some(client) = self.client.take()
            && !client.is_closed()
        {
            self.pool.idle.lock().expect("pool lock").push(client);
        }
    }
}
