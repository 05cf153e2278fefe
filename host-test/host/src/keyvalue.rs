//! The `wasi:keyvalue/store` the service component keeps its Entra tokens in: one in-memory store
//! shared by every request a [`crate::service::ServiceHost`] serves, so that a token outlives the
//! instance that fetched it. (`wasmtime serve -Skeyvalue` gives each request a fresh copy of its
//! preset data instead, so there a token lives for one request.)
//!
//! Bounded: a hostile guest cannot grow it past [`MAX_KEYS`] keys of [`MAX_VALUE_BYTES`] each.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

mod generated {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "wasi:keyvalue/imports@0.2.0-draft",
        with: { "wasi:keyvalue/store.bucket": super::Bucket },
    });
}

use generated::wasi::keyvalue::store::{self, Error, KeyResponse};

/// Most keys the store holds.
pub const MAX_KEYS: usize = 1_024;
/// Largest value it takes.
pub const MAX_VALUE_BYTES: usize = 64 << 10;
/// Keys a `list-keys` page holds.
const PAGE: usize = 100;

/// An open bucket (every bucket is the one default store).
pub struct Bucket;

/// The store: shared by every instance it is linked into.
#[derive(Clone, Default)]
pub struct KeyValue(Arc<Mutex<BTreeMap<String, Vec<u8>>>>);

impl KeyValue {
    /// Keys held now.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    /// Forget everything (as a host whose store lives for one request would).
    pub fn clear(&self) {
        self.map().clear();
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<u8>>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl std::fmt::Debug for KeyValue {
    // The values are bearer tokens: never shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyValue({} keys)", self.len())
    }
}

/// The store as one instance's `wasi:keyvalue` sees it.
pub struct View<'a> {
    store: &'a KeyValue,
    table: &'a mut ResourceTable,
}

impl<'a> View<'a> {
    /// A view of `store` whose bucket handles live in `table`.
    pub fn new(store: &'a KeyValue, table: &'a mut ResourceTable) -> Self {
        View { store, table }
    }
}

struct HasKeyValue;

impl HasData for HasKeyValue {
    type Data<'a> = View<'a>;
}

/// Link `wasi:keyvalue/store` into `linker`, reaching the store through `view`.
pub fn add_to_linker<T: Send + 'static>(linker: &mut Linker<T>, view: fn(&mut T) -> View<'_>) -> wasmtime::Result<()> {
    store::add_to_linker::<T, HasKeyValue>(linker, view)
}

fn other(e: impl std::fmt::Display) -> Error {
    Error::Other(e.to_string())
}

impl store::Host for View<'_> {
    fn open(&mut self, identifier: String) -> Result<Resource<Bucket>, Error> {
        if !identifier.is_empty() {
            return Err(Error::NoSuchStore);
        }
        self.table.push(Bucket).map_err(other)
    }
}

impl store::HostBucket for View<'_> {
    fn get(&mut self, bucket: Resource<Bucket>, key: String) -> Result<Option<Vec<u8>>, Error> {
        self.table.get(&bucket).map_err(other)?;
        Ok(self.store.map().get(&key).cloned())
    }

    fn set(&mut self, bucket: Resource<Bucket>, key: String, value: Vec<u8>) -> Result<(), Error> {
        self.table.get(&bucket).map_err(other)?;
        if value.len() > MAX_VALUE_BYTES {
            return Err(Error::Other(format!("values are limited to {MAX_VALUE_BYTES} bytes")));
        }
        let mut map = self.store.map();
        if !map.contains_key(&key) && map.len() >= MAX_KEYS {
            return Err(Error::Other(format!("the store holds at most {MAX_KEYS} keys")));
        }
        map.insert(key, value);
        Ok(())
    }

    fn delete(&mut self, bucket: Resource<Bucket>, key: String) -> Result<(), Error> {
        self.table.get(&bucket).map_err(other)?;
        self.store.map().remove(&key);
        Ok(())
    }

    fn exists(&mut self, bucket: Resource<Bucket>, key: String) -> Result<bool, Error> {
        self.table.get(&bucket).map_err(other)?;
        Ok(self.store.map().contains_key(&key))
    }

    fn list_keys(&mut self, bucket: Resource<Bucket>, cursor: Option<u64>) -> Result<KeyResponse, Error> {
        self.table.get(&bucket).map_err(other)?;
        let start = cursor.unwrap_or(0) as usize;
        let map = self.store.map();
        let keys: Vec<String> = map.keys().skip(start).take(PAGE).cloned().collect();
        let cursor = (start + keys.len() < map.len()).then_some((start + keys.len()) as u64);
        Ok(KeyResponse { keys, cursor })
    }

    fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::{Host, HostBucket};

    #[test]
    fn one_store_for_every_view_bounded_and_only_the_default_one() {
        let kv = KeyValue::default();
        let (mut t1, mut t2) = (ResourceTable::new(), ResourceTable::new());
        let b1 = View::new(&kv, &mut t1).open(String::new()).ok().unwrap();
        View::new(&kv, &mut t1).set(Resource::new_borrow(b1.rep()), "k".into(), b"v".to_vec()).ok().unwrap();
        // Another instance (its own resource table) sees what the first one wrote.
        let mut v2 = View::new(&kv, &mut t2);
        let b2 = v2.open(String::new()).ok().unwrap();
        assert_eq!(v2.get(Resource::new_borrow(b2.rep()), "k".into()).ok().unwrap(), Some(b"v".to_vec()));
        assert!(matches!(v2.open("elsewhere".into()), Err(Error::NoSuchStore)));
        let too_big = vec![0u8; MAX_VALUE_BYTES + 1];
        assert!(matches!(v2.set(Resource::new_borrow(b2.rep()), "big".into(), too_big), Err(Error::Other(_))));
        for n in 1..MAX_KEYS {
            v2.set(Resource::new_borrow(b2.rep()), format!("k{n}"), vec![]).ok().unwrap();
        }
        assert!(matches!(v2.set(Resource::new_borrow(b2.rep()), "one more".into(), vec![]), Err(Error::Other(_))));
        // Replacing a key that is there still works when full.
        assert!(v2.set(Resource::new_borrow(b2.rep()), "k".into(), b"w".to_vec()).is_ok());
        let page = v2.list_keys(Resource::new_borrow(b2.rep()), None).ok().unwrap();
        assert_eq!((page.keys.len(), page.cursor), (PAGE, Some(PAGE as u64)));
        assert_eq!(kv.len(), MAX_KEYS);
        assert_eq!(format!("{kv:?}"), format!("KeyValue({MAX_KEYS} keys)"));
        v2.drop(b2).unwrap();
    }
}
