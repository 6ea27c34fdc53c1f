//! The shared SQL implementation of the role traits, stamped out per engine by
//! [`impl_tx!`]. Both engines accept the same statements here; where they must
//! differ, the engine module says so.

/// Rows per multi-row INSERT/DELETE statement: 6 parameters per row stays far
/// below SQLite's 32,766 and PostgreSQL's 65,535 bound-parameter limits.
pub(crate) const BATCH_ROWS: usize = 500;

macro_rules! impl_tx {
    ($db:ty, $tx:ident, $audit_page:expr) => {
        /// A transaction on this engine.
        pub struct $tx {
            pub(crate) tx: sqlx::Transaction<'static, $db>,
        }

        fn row_to_asset(r: &<$db as sqlx::Database>::Row) -> $crate::Result<$crate::AssetRow> {
            use sqlx::Row;
            let g = |e: sqlx::Error| $crate::map_err(e);
            let json_list = |s: String| -> $crate::Result<Vec<String>> {
                serde_json::from_str(&s).map_err(|e| $crate::StoreError::Other(format!("bad JSON list: {e}")))
            };
            Ok($crate::AssetRow {
                id: r.try_get("id").map_err(g)?,
                name: r.try_get("name").map_err(g)?,
                attrs: $crate::AssetAttrs {
                    kind: r.try_get("kind").map_err(g)?,
                    owner: r.try_get("owner").map_err(g)?,
                    business_impact: r.try_get("business_impact").map_err(g)?,
                    exposure: r.try_get("exposure").map_err(g)?,
                    environment: r.try_get("environment").map_err(g)?,
                    tags: json_list(r.try_get("tags").map_err(g)?)?,
                },
                has_agent: r.try_get("has_agent").map_err(g)?,
                created_at: $crate::from_millis(r.try_get("created_at").map_err(g)?)?,
                updated_at: $crate::from_millis(r.try_get("updated_at").map_err(g)?)?,
                last_seen_at: r
                    .try_get::<Option<i64>, _>("last_seen_at")
                    .map_err(g)?
                    .map($crate::from_millis)
                    .transpose()?,
                facts: patchbay_core::inventory::HostFacts {
                    hostname: r.try_get("hostname").map_err(g)?,
                    machine_id: r.try_get("machine_id").map_err(g)?,
                    os: patchbay_core::inventory::OsRelease {
                        id: r.try_get("os_id").map_err(g)?,
                        version_id: r.try_get("os_version_id").map_err(g)?,
                        version_codename: r.try_get("os_codename").map_err(g)?,
                        pretty_name: r.try_get("os_pretty_name").map_err(g)?,
                        id_like: r.try_get("os_id_like").map_err(g)?,
                    },
                    kernel: r.try_get("kernel").map_err(g)?,
                    arch: r.try_get("arch").map_err(g)?,
                    ip_addresses: json_list(r.try_get("ip_addresses").map_err(g)?)?,
                    reboot_required: r.try_get("reboot_required").map_err(g)?,
                    services_needing_restart: json_list(r.try_get("services_restart").map_err(g)?)?,
                },
                package_format: r.try_get("package_format").map_err(g)?,
                inventory_hash: r.try_get("inventory_hash").map_err(g)?,
                pending_updates: serde_json::from_str(&r.try_get::<String, _>("pending_updates").map_err(g)?)
                    .map_err(|e| $crate::StoreError::Other(format!("bad pending updates: {e}")))?,
                package_count: r.try_get("package_count").map_err(g)?,
            })
        }

        fn row_to_api_token(r: &<$db as sqlx::Database>::Row) -> $crate::Result<$crate::ApiTokenRow> {
            use sqlx::Row;
            let g = |e: sqlx::Error| $crate::map_err(e);
            Ok($crate::ApiTokenRow {
                id: r.try_get("id").map_err(g)?,
                name: r.try_get("name").map_err(g)?,
                role: r.try_get("role").map_err(g)?,
                prefix: r.try_get("prefix").map_err(g)?,
                created_at: $crate::from_millis(r.try_get("created_at").map_err(g)?)?,
                created_by: r.try_get("created_by").map_err(g)?,
                last_used_at: r
                    .try_get::<Option<i64>, _>("last_used_at")
                    .map_err(g)?
                    .map($crate::from_millis)
                    .transpose()?,
                revoked_at: r
                    .try_get::<Option<i64>, _>("revoked_at")
                    .map_err(g)?
                    .map($crate::from_millis)
                    .transpose()?,
            })
        }

        fn row_to_enroll(r: &<$db as sqlx::Database>::Row) -> $crate::Result<$crate::EnrollTokenRow> {
            use sqlx::Row;
            let g = |e: sqlx::Error| $crate::map_err(e);
            Ok($crate::EnrollTokenRow {
                id: r.try_get("id").map_err(g)?,
                name: r.try_get("name").map_err(g)?,
                prefix: r.try_get("prefix").map_err(g)?,
                uses_total: r.try_get("uses_total").map_err(g)?,
                uses_left: r.try_get("uses_left").map_err(g)?,
                expires_at: $crate::from_millis(r.try_get("expires_at").map_err(g)?)?,
                created_at: $crate::from_millis(r.try_get("created_at").map_err(g)?)?,
                created_by: r.try_get("created_by").map_err(g)?,
                revoked_at: r
                    .try_get::<Option<i64>, _>("revoked_at")
                    .map_err(g)?
                    .map($crate::from_millis)
                    .transpose()?,
            })
        }

        const ASSET_COLS: &str = "id, name, kind, owner, business_impact, exposure, environment, tags, \
            has_agent, created_at, updated_at, last_seen_at, hostname, machine_id, os_id, os_version_id, \
            os_codename, os_pretty_name, os_id_like, kernel, arch, ip_addresses, reboot_required, \
            services_restart, package_format, inventory_hash, pending_updates, package_count";

        fn to_json<T: serde::Serialize>(v: &T) -> String {
            serde_json::to_string(v).expect("serializing plain data cannot fail")
        }

        fn parse_hash(h: &str) -> $crate::Result<[u8; 32]> {
            hex::decode(h)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
                .ok_or_else(|| $crate::StoreError::Other(format!("bad audit hash {h:?}")))
        }

        fn json_list(s: String) -> $crate::Result<Vec<String>> {
            serde_json::from_str(&s).map_err(|e| $crate::StoreError::Other(format!("bad JSON list: {e}")))
        }

        #[async_trait::async_trait]
        impl $crate::AssetStore for $tx {
            async fn asset_by_name(&mut self, name: &str) -> $crate::Result<Option<$crate::AssetRow>> {
                let sql = format!("SELECT {ASSET_COLS} FROM assets WHERE name = $1");
                let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(name)
                    .fetch_optional(&mut *self.tx)
                    .await
                    .map_err($crate::map_err)?;
                row.as_ref().map(row_to_asset).transpose()
            }

            async fn asset_by_machine_id(&mut self, machine_id: &str) -> $crate::Result<Option<$crate::AssetRow>> {
                if machine_id.is_empty() {
                    return Ok(None);
                }
                let sql = format!(
                    "SELECT {ASSET_COLS} FROM assets WHERE machine_id = $1 AND has_agent ORDER BY id LIMIT 1"
                );
                let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(machine_id)
                    .fetch_optional(&mut *self.tx)
                    .await
                    .map_err($crate::map_err)?;
                row.as_ref().map(row_to_asset).transpose()
            }

            async fn list_assets(&mut self) -> $crate::Result<Vec<$crate::AssetRow>> {
                let sql = format!("SELECT {ASSET_COLS} FROM assets ORDER BY name");
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .fetch_all(&mut *self.tx)
                    .await
                    .map_err($crate::map_err)?;
                rows.iter().map(row_to_asset).collect()
            }

            async fn insert_asset(
                &mut self,
                name: &str,
                attrs: &$crate::AssetAttrs,
                has_agent: bool,
                now: jiff::Timestamp,
            ) -> $crate::Result<i64> {
                use sqlx::Row;
                let now = $crate::to_millis(now);
                // ON CONFLICT DO NOTHING instead of a unique violation: on
                // PostgreSQL a failed statement aborts the whole transaction, and
                // callers must be able to go on (e.g. try another name).
                let row = sqlx::query(
                    "INSERT INTO assets (name, kind, owner, business_impact, exposure, environment, tags, \
                     has_agent, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) \
                     ON CONFLICT (name) DO NOTHING RETURNING id",
                )
                .bind(name)
                .bind(&attrs.kind)
                .bind(&attrs.owner)
                .bind(&attrs.business_impact)
                .bind(&attrs.exposure)
                .bind(&attrs.environment)
                .bind(to_json(&attrs.tags))
                .bind(has_agent)
                .bind(now)
                .fetch_optional(&mut *self.tx)
                .await
                .map_err($crate::map_err)?
                .ok_or_else(|| $crate::StoreError::Conflict(format!("an asset named {name:?} already exists")))?;
                row.try_get("id").map_err($crate::map_err)
            }

            async fn update_asset_attrs(
                &mut self,
                id: i64,
                attrs: &$crate::AssetAttrs,
                now: jiff::Timestamp,
            ) -> $crate::Result<()> {
                let r = sqlx::query(
                    "UPDATE assets SET kind = $2, owner = $3, business_impact = $4, exposure = $5, \
                     environment = $6, tags = $7, updated_at = $8 WHERE id = $1",
                )
                .bind(id)
                .bind(&attrs.kind)
                .bind(&attrs.owner)
                .bind(&attrs.business_impact)
                .bind(&attrs.exposure)
                .bind(&attrs.environment)
                .bind(to_json(&attrs.tags))
                .bind($crate::to_millis(now))
                .execute(&mut *self.tx)
                .await
                .map_err($crate::map_err)?;
                if r.rows_affected() == 0 {
                    return Err($crate::StoreError::NotFound(format!("asset id {id}")));
                }
                Ok(())
            }

            async fn set_machine(
                &mut self,
                id: i64,
                hostname: &str,
                machine_id: &str,
                now: jiff::Timestamp,
            ) -> $crate::Result<()> {
                sqlx::query("UPDATE assets SET hostname = $2, machine_id = $3, updated_at = $4 WHERE id = $1")
                    .bind(id)
                    .bind(hostname)
                    .bind(machine_id)
                    .bind($crate::to_millis(now))
                    .execute(&mut *self.tx)
                    .await
                    .map_err($crate::map_err)?;
                Ok(())
            }

            async fn set_has_agent(&mut self, id: i64, has_agent: bool, now: jiff::Timestamp) -> $crate::Result<()> {
                sqlx::query("UPDATE assets SET has_agent = $2, updated_at = $3 WHERE id = $1")
                    .bind(id)
                    .bind(has_agent)
                    .bind($crate::to_millis(now))
                    .execute(&mut *self.tx)
                    .await
                    .map_err($crate::map_err)?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::InventoryStore for $tx {
            async fn packages(&mut self, asset_id: i64) -> $crate::Result<Vec<patchbay_core::inventory::Package>> {
                use sqlx::Row;
                let rows = sqlx::query(
                    "SELECT name, arch, version, source, source_version FROM asset_packages \
                     WHERE asset_id = $1 ORDER BY name, arch, version",
                )
                .bind(asset_id)
                .fetch_all(&mut *self.tx)
                .await
                .map_err($crate::map_err)?;
                let g = |e: sqlx::Error| $crate::map_err(e);
                let mut out: Vec<patchbay_core::inventory::Package> = rows
                    .iter()
                    .map(|r| {
                        Ok(patchbay_core::inventory::Package {
                            name: r.try_get("name").map_err(g)?,
                            arch: r.try_get("arch").map_err(g)?,
                            version: r.try_get("version").map_err(g)?,
                            source: r.try_get("source").map_err(g)?,
                            source_version: r.try_get("source_version").map_err(g)?,
                        })
                    })
                    .collect::<$crate::Result<_>>()?;
                // Byte order, as in the domain (collations may differ between engines).
                out.sort();
                Ok(out)
            }

            async fn apply_package_delta(
                &mut self,
                asset_id: i64,
                delta: &patchbay_core::inventory::PackageDelta,
            ) -> $crate::Result<u64> {
                let mut written = 0u64;
                for chunk in delta.removed.chunks($crate::sql::BATCH_ROWS) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new("DELETE FROM asset_packages WHERE asset_id = ");
                    qb.push_bind(asset_id);
                    qb.push(" AND (name, arch, version) IN (");
                    let mut sep = qb.separated(", ");
                    for p in chunk {
                        sep.push("(");
                        sep.push_bind_unseparated(p.name.clone());
                        sep.push_unseparated(", ");
                        sep.push_bind_unseparated(p.arch.clone());
                        sep.push_unseparated(", ");
                        sep.push_bind_unseparated(p.version.clone());
                        sep.push_unseparated(")");
                    }
                    qb.push(")");
                    let r = qb.build().execute(&mut *self.tx).await.map_err($crate::map_err)?;
                    written += r.rows_affected();
                }
                for chunk in delta.added.chunks($crate::sql::BATCH_ROWS) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO asset_packages (asset_id, name, arch, version, source, source_version) ",
                    );
                    qb.push_values(chunk, |mut b, p| {
                        b.push_bind(asset_id)
                            .push_bind(p.name.clone())
                            .push_bind(p.arch.clone())
                            .push_bind(p.version.clone())
                            .push_bind(p.source.clone())
                            .push_bind(p.source_version.clone());
                    });
                    // A package whose key exists already differs only in source
                    // fields: update those in place.
                    qb.push(
                        " ON CONFLICT (asset_id, name, arch, version) DO UPDATE SET \
                         source = excluded.source, source_version = excluded.source_version",
                    );
                    let r = qb.build().execute(&mut *self.tx).await.map_err($crate::map_err)?;
                    written += r.rows_affected();
                }
                if written > 0 {
                    sqlx::query(
                        "UPDATE assets SET package_count = \
                         (SELECT COUNT(*) FROM asset_packages WHERE asset_id = $1) WHERE id = $1",
                    )
                    .bind(asset_id)
                    .execute(&mut *self.tx)
                    .await
                    .map_err($crate::map_err)?;
                }
                Ok(written)
            }

            async fn set_host_state(&mut self, asset_id: i64, s: &$crate::HostState<'_>) -> $crate::Result<()> {
                let f = s.facts;
                sqlx::query(
                    "UPDATE assets SET hostname = $2, machine_id = $3, os_id = $4, os_version_id = $5, \
                     os_codename = $6, os_pretty_name = $7, os_id_like = $8, kernel = $9, arch = $10, \
                     ip_addresses = $11, reboot_required = $12, services_restart = $13, package_format = $14, \
                     inventory_hash = $15, pending_updates = $16, last_seen_at = COALESCE($17, last_seen_at), \
                     updated_at = $18 \
                     WHERE id = $1",
                )
                .bind(asset_id)
                .bind(&f.hostname)
                .bind(&f.machine_id)
                .bind(&f.os.id)
                .bind(&f.os.version_id)
                .bind(&f.os.version_codename)
                .bind(&f.os.pretty_name)
                .bind(&f.os.id_like)
                .bind(&f.kernel)
                .bind(&f.arch)
                .bind(to_json(&f.ip_addresses))
                .bind(f.reboot_required)
                .bind(to_json(&f.services_needing_restart))
                .bind(s.package_format)
                .bind(s.inventory_hash)
                .bind(to_json(&s.pending_updates))
                .bind(s.seen_at.map($crate::to_millis))
                .bind($crate::to_millis(s.now))
                .execute(&mut *self.tx)
                .await
                .map_err($crate::map_err)?;
                Ok(())
            }

            async fn touch_seen(&mut self, asset_id: i64, at: jiff::Timestamp) -> $crate::Result<()> {
                sqlx::query("UPDATE assets SET last_seen_at = $2 WHERE id = $1")
                    .bind(asset_id)
                    .bind($crate::to_millis(at))
                    .execute(&mut *self.tx)
                    .await
                    .map_err($crate::map_err)?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::TokenStore for $tx {
            async fn insert_api_token(&mut self, t: &$crate::NewApiToken) -> $crate::Result<$crate::ApiTokenRow> {
                let row = sqlx::query(
                    "INSERT INTO api_tokens (name, role, token_hash, prefix, created_at, created_by) \
                     VALUES ($1, $2, $3, $4, $5, $6) \
                     RETURNING id, name, role, prefix, created_at, created_by, last_used_at, revoked_at",
                )
                .bind(&t.name)
                .bind(&t.role)
                .bind(&t.token_hash)
                .bind(&t.prefix)
                .bind($crate::to_millis(t.created_at))
                .bind(&t.created_by)
                .fetch_one(&mut *self.tx)
                .await
                .map_err($crate::map_err)?;
                row_to_api_token(&row)
            }

            async fn api_token_by_hash(&mut self, hash: &str) -> $crate::Result<Option<$crate::ApiTokenRow>> {
                let row = sqlx::query(
                    "SELECT id, name, role, prefix, created_at, created_by, last_used_at, revoked_at \
                     FROM api_tokens WHERE token_hash = $1",
                )
                .bind(hash)
                .fetch_optional(&mut *self.tx)
                .await
                .map_err($crate::map_err)?;
                row.as_ref().map(row_to_api_token).transpose()
            }

            async fn touch_api_token(&mut self, id: i64, at: jiff::Timestamp) -> $crate::Result<()> {
                sqlx::query("UPDATE api_tokens SET last_used_at = $2 WHERE id = $1")
                    .bind(id)
                    .bind($crate::to_millis(at))
                    .execute(&mut *self.tx)
                    .await
                    .map_err($crate::map_err)?;
                Ok(())
            }

            async fn list_api_tokens(&mut self) -> $crate::Result<Vec<$crate::ApiTokenRow>> {
                let rows = sqlx::query(
                    "SELECT id, name, role, prefix, created_at, created_by, last_used_at, revoked_at \
                     FROM api_tokens ORDER BY id",
                )
                .fetch_all(&mut *self.tx)
                .await
                .map_err($crate::map_err)?;
                rows.iter().map(row_to_api_token).collect()
            }

            async fn revoke_api_token(&mut self, id: i64, at: jiff::Timestamp) -> $crate::Result<()> {
                let r = sqlx::query("UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                    .bind(id)
                    .bind($crate::to_millis(at))
                    .execute(&mut *self.tx)
                    .await
                    .map_err($crate::map_err)?;
                if r.rows_affected() == 1 {
                    return Ok(());
                }
                let exists = sqlx::query("SELECT id FROM api_tokens WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *self.tx)
                    .await
                    .map_err($crate::map_err)?;
                Err(match exists {
                    Some(_) => $crate::StoreError::Conflict(format!("token {id} is already revoked")),
                    None => $crate::StoreError::NotFound(format!("token {id}")),
                })
            }

            async fn insert_enroll_token(
                &mut self,
                t: &$crate::NewEnrollToken,
            ) -> $crate::Result<$crate::EnrollTokenRow> {
                let row = sqlx::query(
                    "INSERT INTO enroll_tokens (name, token_hash, prefix, uses_total, uses_left, expires_at, \
                     created_at, created_by) VALUES ($1, $2, $3, $4, $4, $5, $6, $7) \
                     RETURNING id, name, prefix, uses_total, uses_left, expires_at, created_at, created_by, revoked_at",
                )
                .bind(&t.name)
                .bind(&t.token_hash)
                .bind(&t.prefix)
                .bind(t.uses)
                .bind($crate::to_millis(t.expires_at))
                .bind($crate::to_millis(t.created_at))
                .bind(&t.created_by)
                .fetch_one(&mut *self.tx)
                .await
                .map_err($crate::map_err)?;
                row_to_enroll(&row)
            }

            async fn consume_enroll_token(
                &mut self,
                hash: &str,
                now: jiff::Timestamp,
            ) -> $crate::Result<Option<$crate::EnrollTokenRow>> {
                // One statement decides and decrements, so two agents racing for
                // the last use cannot both win.
                let row = sqlx::query(
                    "UPDATE enroll_tokens SET uses_left = uses_left - 1 \
                     WHERE token_hash = $1 AND uses_left > 0 AND revoked_at IS NULL AND expires_at > $2 \
                     RETURNING id, name, prefix, uses_total, uses_left, expires_at, created_at, created_by, revoked_at",
                )
                .bind(hash)
                .bind($crate::to_millis(now))
                .fetch_optional(&mut *self.tx)
                .await
                .map_err($crate::map_err)?;
                row.as_ref().map(row_to_enroll).transpose()
            }

            async fn list_enroll_tokens(&mut self) -> $crate::Result<Vec<$crate::EnrollTokenRow>> {
                let rows = sqlx::query(
                    "SELECT id, name, prefix, uses_total, uses_left, expires_at, created_at, created_by, revoked_at \
                     FROM enroll_tokens ORDER BY id",
                )
                .fetch_all(&mut *self.tx)
                .await
                .map_err($crate::map_err)?;
                rows.iter().map(row_to_enroll).collect()
            }
        }

        #[async_trait::async_trait]
        impl $crate::AgentStore for $tx {
            async fn insert_agent(
                &mut self,
                id: &str,
                asset_id: i64,
                secret_hash: &str,
                enroll_token_id: Option<i64>,
                now: jiff::Timestamp,
            ) -> $crate::Result<()> {
                sqlx::query(
                    "INSERT INTO agents (id, asset_id, secret_hash, enroll_token_id, enrolled_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(id)
                .bind(asset_id)
                .bind(secret_hash)
                .bind(enroll_token_id)
                .bind($crate::to_millis(now))
                .execute(&mut *self.tx)
                .await
                .map_err($crate::map_err)?;
                Ok(())
            }

            async fn agent_by_secret_hash(&mut self, hash: &str) -> $crate::Result<Option<$crate::AgentRow>> {
                use sqlx::Row;
                let row = sqlx::query(
                    "SELECT g.id, g.asset_id, a.name, g.enrolled_at, g.last_checkin_at, g.revoked_at \
                     FROM agents g JOIN assets a ON a.id = g.asset_id WHERE g.secret_hash = $1",
                )
                .bind(hash)
                .fetch_optional(&mut *self.tx)
                .await
                .map_err($crate::map_err)?;
                let g = |e: sqlx::Error| $crate::map_err(e);
                row.map(|r| {
                    Ok($crate::AgentRow {
                        id: r.try_get("id").map_err(g)?,
                        asset_id: r.try_get("asset_id").map_err(g)?,
                        asset_name: r.try_get("name").map_err(g)?,
                        enrolled_at: $crate::from_millis(r.try_get("enrolled_at").map_err(g)?)?,
                        last_checkin_at: r
                            .try_get::<Option<i64>, _>("last_checkin_at")
                            .map_err(g)?
                            .map($crate::from_millis)
                            .transpose()?,
                        revoked_at: r
                            .try_get::<Option<i64>, _>("revoked_at")
                            .map_err(g)?
                            .map($crate::from_millis)
                            .transpose()?,
                    })
                })
                .transpose()
            }

            async fn revoke_agents_of_asset(&mut self, asset_id: i64, now: jiff::Timestamp) -> $crate::Result<u64> {
                let r = sqlx::query("UPDATE agents SET revoked_at = $2 WHERE asset_id = $1 AND revoked_at IS NULL")
                    .bind(asset_id)
                    .bind($crate::to_millis(now))
                    .execute(&mut *self.tx)
                    .await
                    .map_err($crate::map_err)?;
                Ok(r.rows_affected())
            }

            async fn touch_agent(&mut self, id: &str, at: jiff::Timestamp) -> $crate::Result<()> {
                sqlx::query("UPDATE agents SET last_checkin_at = $2 WHERE id = $1")
                    .bind(id)
                    .bind($crate::to_millis(at))
                    .execute(&mut *self.tx)
                    .await
                    .map_err($crate::map_err)?;
                Ok(())
            }

            async fn active_agents_of_asset(&mut self, asset_id: i64) -> $crate::Result<u64> {
                use sqlx::Row;
                let r = sqlx::query("SELECT COUNT(*) AS n FROM agents WHERE asset_id = $1 AND revoked_at IS NULL")
                    .bind(asset_id)
                    .fetch_one(&mut *self.tx)
                    .await
                    .map_err($crate::map_err)?;
                let n: i64 = r.try_get("n").map_err($crate::map_err)?;
                Ok(n.max(0) as u64)
            }

            async fn insert_enrollment_approval(
                &mut self,
                asset_id: i64,
                approved_by: &str,
                note: &str,
                now: jiff::Timestamp,
                expires_at: jiff::Timestamp,
            ) -> $crate::Result<i64> {
                use sqlx::Row;
                let r = sqlx::query(
                    "INSERT INTO enrollment_approvals (asset_id, approved_by, approved_at, expires_at, note) \
                     VALUES ($1, $2, $3, $4, $5) RETURNING id",
                )
                .bind(asset_id)
                .bind(approved_by)
                .bind($crate::to_millis(now))
                .bind($crate::to_millis(expires_at))
                .bind(note)
                .fetch_one(&mut *self.tx)
                .await
                .map_err($crate::map_err)?;
                r.try_get("id").map_err($crate::map_err)
            }

            async fn take_enrollment_approval(
                &mut self,
                asset_id: i64,
                now: jiff::Timestamp,
            ) -> $crate::Result<Option<(i64, String)>> {
                use sqlx::Row;
                // One statement: on PostgreSQL the UPDATE's row lock makes two
                // concurrent enrolments race for one approval, and only one wins.
                let row = sqlx::query(
                    "UPDATE enrollment_approvals SET used_at = $2 WHERE id = ( \
                       SELECT id FROM enrollment_approvals \
                       WHERE asset_id = $1 AND used_at IS NULL AND expires_at > $2 \
                       ORDER BY id LIMIT 1) \
                     AND used_at IS NULL RETURNING id, approved_by",
                )
                .bind(asset_id)
                .bind($crate::to_millis(now))
                .fetch_optional(&mut *self.tx)
                .await
                .map_err($crate::map_err)?;
                let g = |e: sqlx::Error| $crate::map_err(e);
                row.map(|r| Ok((r.try_get("id").map_err(g)?, r.try_get("approved_by").map_err(g)?)))
                    .transpose()
            }
        }

        #[async_trait::async_trait]
        impl $crate::AuditStore for $tx {
            async fn append_audit(
                &mut self,
                rec: &$crate::AuditRecord,
                signer: Option<&patchbay_core::audit::Signer>,
            ) -> $crate::Result<i64> {
                use sqlx::Row;
                // Take the head (a row lock until commit on PostgreSQL).
                let head = sqlx::query("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")
                    .fetch_optional(&mut *self.tx)
                    .await
                    .map_err($crate::map_err)?
                    .ok_or_else(|| $crate::StoreError::Other("the audit chain head is missing".into()))?;
                let seq: i64 = head.try_get("seq").map_err($crate::map_err)?;
                let prev_hex: String = head.try_get("hash").map_err($crate::map_err)?;
                let prev = parse_hash(&prev_hex)?;
                // Never sign on top of a head this key has not signed: a chain
                // rewritten without the key (re-hashed, signatures dropped) would
                // otherwise be vouched for by the next real signature.
                if let (Some(s), true) = (signer, seq > 1) {
                    let sig: Option<Option<String>> = sqlx::query_scalar("SELECT sig FROM audit_events WHERE seq = $1")
                        .bind(seq - 1)
                        .fetch_optional(&mut *self.tx)
                        .await
                        .map_err($crate::map_err)?;
                    if !s.signed_head(seq - 1, &prev, sig.flatten().as_deref()) {
                        return Err($crate::StoreError::Integrity(format!(
                            "the audit log's last entry ({}) is not signed by this server's key, so the log may have been \
                             rewritten; changes are refused until it is checked with `patchbay audit verify`",
                            seq - 1
                        )));
                    }
                }
                let detail = rec.detail.to_string();
                let at = $crate::to_millis(rec.at);
                let fields = patchbay_core::audit::EntryFields {
                    seq,
                    at_millis: at,
                    actor: &rec.actor,
                    action: &rec.action,
                    target: &rec.target,
                    outcome: &rec.outcome,
                    detail: &detail,
                };
                let hash = patchbay_core::audit::entry_hash(&fields, &prev);
                let hash_hex = hex::encode(hash);
                let sig = signer.map(|s| s.sign_head(seq, &hash));
                sqlx::query(
                    "INSERT INTO audit_events (seq, at, actor, action, target, outcome, detail, prev_hash, hash, sig) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(seq)
                .bind(at)
                .bind(&rec.actor)
                .bind(&rec.action)
                .bind(&rec.target)
                .bind(&rec.outcome)
                .bind(&detail)
                .bind(&prev_hex)
                .bind(&hash_hex)
                .bind(&sig)
                .execute(&mut *self.tx)
                .await
                .map_err($crate::map_err)?;
                sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
                    .bind(&hash_hex)
                    .execute(&mut *self.tx)
                    .await
                    .map_err($crate::map_err)?;
                Ok(seq)
            }

            async fn audit_entries(&mut self, after: i64, limit: i64) -> $crate::Result<Vec<patchbay_core::audit::StoredEntry>> {
                use sqlx::Row;
                // One row per page: the engine aggregates the page into one JSON
                // array (per-row transport costs more than the verification).
                type Raw = (i64, i64, String, String, String, String, String, Option<String>, Option<String>, Option<String>);
                let row = sqlx::query($audit_page)
                    .bind(after)
                    .bind(limit)
                    .fetch_optional(&mut *self.tx)
                    .await
                    .map_err($crate::map_err)?;
                let Some(row) = row else { return Ok(Vec::new()) };
                let text: Option<String> = row.try_get(0).map_err($crate::map_err)?;
                let Some(text) = text else { return Ok(Vec::new()) };
                let raw: Vec<Raw> = serde_json::from_str(&text)
                    .map_err(|e| $crate::StoreError::Other(format!("bad audit page: {e}")))?;
                let mut out: Vec<patchbay_core::audit::StoredEntry> = raw
                    .into_iter()
                    .map(|(seq, at_millis, actor, action, target, outcome, detail, prev_hash, hash, sig)| {
                        patchbay_core::audit::StoredEntry {
                            seq,
                            at_millis,
                            actor,
                            action,
                            target,
                            outcome,
                            detail,
                            prev_hash,
                            hash,
                            sig,
                        }
                    })
                    .collect();
                // Aggregate order is the engine's business: sort to be sure.
                out.sort_by_key(|e| e.seq);
                Ok(out)
            }

            async fn audit_head(&mut self) -> $crate::Result<(i64, String)> {
                use sqlx::Row;
                let r = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
                    .fetch_optional(&mut *self.tx)
                    .await
                    .map_err($crate::map_err)?
                    .ok_or_else(|| $crate::StoreError::Other("the audit chain head is missing".into()))?;
                Ok((r.try_get("seq").map_err($crate::map_err)?, r.try_get("hash").map_err($crate::map_err)?))
            }

            async fn seal_legacy_audit(&mut self, signer: Option<&patchbay_core::audit::Signer>) -> $crate::Result<u64> {
                use sqlx::Row;
                let (head, _) = self.audit_head().await?;
                let rows = sqlx::query("SELECT seq FROM audit_events WHERE hash IS NULL ORDER BY seq")
                    .fetch_all(&mut *self.tx)
                    .await
                    .map_err($crate::map_err)?;
                if rows.is_empty() {
                    return Ok(0);
                }
                if head != 0 {
                    return Err($crate::StoreError::Other(
                        "audit entries without a hash exist after the chain started".into(),
                    ));
                }
                // Renumber densely (ascending, so each target number is free), then hash.
                let mut prev = patchbay_core::audit::GENESIS;
                let mut n: i64 = 0;
                for r in &rows {
                    let old: i64 = r.try_get("seq").map_err($crate::map_err)?;
                    n += 1;
                    if old != n {
                        sqlx::query("UPDATE audit_events SET seq = $1 WHERE seq = $2")
                            .bind(n)
                            .bind(old)
                            .execute(&mut *self.tx)
                            .await
                            .map_err($crate::map_err)?;
                    }
                }
                let entries = self.audit_entries(0, n).await?;
                for e in &entries {
                    let fields = patchbay_core::audit::EntryFields {
                        seq: e.seq,
                        at_millis: e.at_millis,
                        actor: &e.actor,
                        action: &e.action,
                        target: &e.target,
                        outcome: &e.outcome,
                        detail: &e.detail,
                    };
                    let h = patchbay_core::audit::entry_hash(&fields, &prev);
                    let sig = if e.seq == n { signer.map(|s| s.sign_head(e.seq, &h)) } else { None };
                    sqlx::query("UPDATE audit_events SET prev_hash = $1, hash = $2, sig = $3 WHERE seq = $4")
                        .bind(hex::encode(prev))
                        .bind(hex::encode(h))
                        .bind(sig)
                        .bind(e.seq)
                        .execute(&mut *self.tx)
                        .await
                        .map_err($crate::map_err)?;
                    prev = h;
                }
                sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
                    .bind(n)
                    .bind(hex::encode(prev))
                    .execute(&mut *self.tx)
                    .await
                    .map_err($crate::map_err)?;
                Ok(n as u64)
            }

            async fn register_server_key(&mut self, public_hex: &str, at: jiff::Timestamp) -> $crate::Result<()> {
                sqlx::query("INSERT INTO server_keys (public_key, created_at) VALUES ($1, $2) ON CONFLICT (public_key) DO NOTHING")
                    .bind(public_hex)
                    .bind($crate::to_millis(at))
                    .execute(&mut *self.tx)
                    .await
                    .map_err($crate::map_err)?;
                Ok(())
            }

            async fn server_keys(&mut self) -> $crate::Result<Vec<String>> {
                use sqlx::Row;
                let rows = sqlx::query("SELECT public_key FROM server_keys ORDER BY created_at, public_key")
                    .fetch_all(&mut *self.tx)
                    .await
                    .map_err($crate::map_err)?;
                rows.iter().map(|r| r.try_get("public_key").map_err($crate::map_err)).collect()
            }

            async fn list_audit(&mut self, after: i64, limit: i64) -> $crate::Result<Vec<$crate::AuditEntry>> {
                use sqlx::Row;
                let rows = sqlx::query(
                    "SELECT seq, at, actor, action, target, outcome, detail FROM audit_events \
                     WHERE seq > $1 ORDER BY seq LIMIT $2",
                )
                .bind(after)
                .bind(limit)
                .fetch_all(&mut *self.tx)
                .await
                .map_err($crate::map_err)?;
                let g = |e: sqlx::Error| $crate::map_err(e);
                rows.iter()
                    .map(|r| {
                        let detail: String = r.try_get("detail").map_err(g)?;
                        Ok($crate::AuditEntry {
                            seq: r.try_get("seq").map_err(g)?,
                            record: $crate::AuditRecord {
                                at: $crate::from_millis(r.try_get("at").map_err(g)?)?,
                                actor: r.try_get("actor").map_err(g)?,
                                action: r.try_get("action").map_err(g)?,
                                target: r.try_get("target").map_err(g)?,
                                outcome: r.try_get("outcome").map_err(g)?,
                                detail: serde_json::from_str(&detail)
                                    .map_err(|e| $crate::StoreError::Other(format!("bad audit detail: {e}")))?,
                            },
                        })
                    })
                    .collect()
            }
        }

        fn opt_ts(v: Option<i64>) -> $crate::Result<Option<jiff::Timestamp>> {
            v.map($crate::from_millis).transpose()
        }

        fn row_to_finding(r: &<$db as sqlx::Database>::Row) -> $crate::Result<$crate::FindingRow> {
            use sqlx::Row;
            let g = |e: sqlx::Error| $crate::map_err(e);
            Ok($crate::FindingRow {
                id: r.try_get("id").map_err(g)?,
                asset_id: r.try_get("asset_id").map_err(g)?,
                asset_name: r.try_get("asset_name").map_err(g)?,
                finding: $crate::NewFinding {
                    advisory_id: r.try_get("advisory_id").map_err(g)?,
                    package: r.try_get("package").map_err(g)?,
                    arch: r.try_get("arch").map_err(g)?,
                    source_package: r.try_get("source_package").map_err(g)?,
                    installed_version: r.try_get("installed_version").map_err(g)?,
                    fixed_version: r.try_get("fixed_version").map_err(g)?,
                },
                first_seen: $crate::from_millis(r.try_get("first_seen").map_err(g)?)?,
                last_seen: $crate::from_millis(r.try_get("last_seen").map_err(g)?)?,
                resolved_at: opt_ts(r.try_get("resolved_at").map_err(g)?)?,
            })
        }

        const FINDING_COLS: &str = "f.id, f.asset_id, a.name AS asset_name, f.advisory_id, f.package, f.arch, \
            f.source_package, f.installed_version, f.fixed_version, f.first_seen, f.last_seen, f.resolved_at";

        #[async_trait::async_trait]
        impl $crate::FeedStore for $tx {
            async fn record_feed(&mut self, f: &$crate::FeedRow) -> $crate::Result<()> {
                sqlx::query(
                    "INSERT INTO feeds (kind, source, version, records, skipped, imported_at, imported_by) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (kind, source) DO UPDATE SET \
                     version = excluded.version, records = excluded.records, skipped = excluded.skipped, \
                     imported_at = excluded.imported_at, imported_by = excluded.imported_by",
                )
                .bind(&f.kind)
                .bind(&f.source)
                .bind(&f.version)
                .bind(f.records)
                .bind(f.skipped)
                .bind($crate::to_millis(f.imported_at))
                .bind(&f.imported_by)
                .execute(&mut *self.tx)
                .await
                .map_err($crate::map_err)?;
                Ok(())
            }

            async fn list_feeds(&mut self) -> $crate::Result<Vec<$crate::FeedRow>> {
                use sqlx::Row;
                let rows = sqlx::query(
                    "SELECT id, kind, source, version, records, skipped, imported_at, imported_by FROM feeds \
                     ORDER BY kind, source",
                )
                .fetch_all(&mut *self.tx)
                .await
                .map_err($crate::map_err)?;
                let g = |e: sqlx::Error| $crate::map_err(e);
                rows.iter()
                    .map(|r| {
                        Ok($crate::FeedRow {
                            id: r.try_get("id").map_err(g)?,
                            kind: r.try_get("kind").map_err(g)?,
                            source: r.try_get("source").map_err(g)?,
                            version: r.try_get("version").map_err(g)?,
                            records: r.try_get("records").map_err(g)?,
                            skipped: r.try_get("skipped").map_err(g)?,
                            imported_at: $crate::from_millis(r.try_get("imported_at").map_err(g)?)?,
                            imported_by: r.try_get("imported_by").map_err(g)?,
                        })
                    })
                    .collect()
            }

            async fn feeds_generation(&mut self) -> $crate::Result<i64> {
                use sqlx::Row;
                let r = sqlx::query("SELECT COALESCE(MAX(imported_at), 0) AS g, COUNT(*) AS n FROM feeds")
                    .fetch_one(&mut *self.tx)
                    .await
                    .map_err($crate::map_err)?;
                let g: i64 = r.try_get("g").map_err($crate::map_err)?;
                let n: i64 = r.try_get("n").map_err($crate::map_err)?;
                Ok(g.wrapping_mul(31).wrapping_add(n))
            }

            async fn upsert_advisories(&mut self, rows: &[$crate::AdvisoryRow]) -> $crate::Result<u64> {
                let mut written = 0;
                // 9 parameters per row.
                for chunk in rows.chunks(200) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO advisories (id, summary, cves, cvss_score, cvss_vector, published, modified, \
                         affected, ecosystems) ",
                    );
                    qb.push_values(chunk, |mut b, a| {
                        b.push_bind(a.id.clone())
                            .push_bind(a.summary.clone())
                            .push_bind(to_json(&a.cves))
                            .push_bind(a.cvss_score)
                            .push_bind(a.cvss_vector.clone())
                            .push_bind(a.published.map($crate::to_millis))
                            .push_bind(a.modified.map($crate::to_millis))
                            .push_bind(a.affected.to_string())
                            .push_bind(a.ecosystems.clone());
                    });
                    qb.push(
                        " ON CONFLICT (id) DO UPDATE SET summary = excluded.summary, cves = excluded.cves, \
                         cvss_score = excluded.cvss_score, cvss_vector = excluded.cvss_vector, \
                         published = excluded.published, modified = excluded.modified, \
                         affected = excluded.affected, ecosystems = excluded.ecosystems",
                    );
                    written += qb.build().execute(&mut *self.tx).await.map_err($crate::map_err)?.rows_affected();
                }
                Ok(written)
            }

            async fn all_advisories(&mut self) -> $crate::Result<Vec<$crate::AdvisoryRow>> {
                use sqlx::Row;
                let rows = sqlx::query(
                    "SELECT id, summary, cves, cvss_score, cvss_vector, published, modified, affected, ecosystems \
                     FROM advisories ORDER BY id",
                )
                .fetch_all(&mut *self.tx)
                .await
                .map_err($crate::map_err)?;
                let g = |e: sqlx::Error| $crate::map_err(e);
                rows.iter()
                    .map(|r| {
                        let cves: String = r.try_get("cves").map_err(g)?;
                        let affected: String = r.try_get("affected").map_err(g)?;
                        Ok($crate::AdvisoryRow {
                            id: r.try_get("id").map_err(g)?,
                            summary: r.try_get("summary").map_err(g)?,
                            cves: serde_json::from_str(&cves)
                                .map_err(|e| $crate::StoreError::Other(format!("bad advisory cves: {e}")))?,
                            cvss_score: r.try_get("cvss_score").map_err(g)?,
                            cvss_vector: r.try_get("cvss_vector").map_err(g)?,
                            published: opt_ts(r.try_get("published").map_err(g)?)?,
                            modified: opt_ts(r.try_get("modified").map_err(g)?)?,
                            affected: serde_json::from_str(&affected)
                                .map_err(|e| $crate::StoreError::Other(format!("bad advisory affected: {e}")))?,
                            ecosystems: r.try_get("ecosystems").map_err(g)?,
                        })
                    })
                    .collect()
            }

            async fn upsert_kev(&mut self, rows: &[$crate::KevRow]) -> $crate::Result<Vec<String>> {
                use sqlx::Row;
                let mut existing = std::collections::HashSet::new();
                for chunk in rows.chunks($crate::sql::BATCH_ROWS) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new("SELECT cve FROM kev WHERE cve IN (");
                    let mut sep = qb.separated(", ");
                    for k in chunk {
                        sep.push_bind(k.cve.clone());
                    }
                    qb.push(")");
                    for r in qb.build().fetch_all(&mut *self.tx).await.map_err($crate::map_err)? {
                        existing.insert(r.try_get::<String, _>("cve").map_err($crate::map_err)?);
                    }
                }
                for chunk in rows.chunks(400) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO kev (cve, vendor, product, name, date_added, due_date, ransomware, catalog_version) ",
                    );
                    qb.push_values(chunk, |mut b, k| {
                        b.push_bind(k.cve.clone())
                            .push_bind(k.vendor.clone())
                            .push_bind(k.product.clone())
                            .push_bind(k.name.clone())
                            .push_bind(k.date_added.clone())
                            .push_bind(k.due_date.clone())
                            .push_bind(k.ransomware)
                            .push_bind(k.catalog_version.clone());
                    });
                    qb.push(
                        " ON CONFLICT (cve) DO UPDATE SET vendor = excluded.vendor, product = excluded.product, \
                         name = excluded.name, date_added = excluded.date_added, due_date = excluded.due_date, \
                         ransomware = excluded.ransomware, catalog_version = excluded.catalog_version",
                    );
                    qb.build().execute(&mut *self.tx).await.map_err($crate::map_err)?;
                }
                let mut added: Vec<String> =
                    rows.iter().filter(|k| !existing.contains(&k.cve)).map(|k| k.cve.clone()).collect();
                added.sort();
                added.dedup();
                Ok(added)
            }

            async fn all_kev(&mut self) -> $crate::Result<Vec<$crate::KevRow>> {
                use sqlx::Row;
                let rows = sqlx::query(
                    "SELECT cve, vendor, product, name, date_added, due_date, ransomware, catalog_version FROM kev \
                     ORDER BY cve",
                )
                .fetch_all(&mut *self.tx)
                .await
                .map_err($crate::map_err)?;
                let g = |e: sqlx::Error| $crate::map_err(e);
                rows.iter()
                    .map(|r| {
                        Ok($crate::KevRow {
                            cve: r.try_get("cve").map_err(g)?,
                            vendor: r.try_get("vendor").map_err(g)?,
                            product: r.try_get("product").map_err(g)?,
                            name: r.try_get("name").map_err(g)?,
                            date_added: r.try_get("date_added").map_err(g)?,
                            due_date: r.try_get("due_date").map_err(g)?,
                            ransomware: r.try_get("ransomware").map_err(g)?,
                            catalog_version: r.try_get("catalog_version").map_err(g)?,
                        })
                    })
                    .collect()
            }

            async fn upsert_epss(&mut self, rows: &[$crate::EpssRow]) -> $crate::Result<u64> {
                let mut written = 0;
                for chunk in rows.chunks(1000) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new("INSERT INTO epss (cve, epss, percentile, score_date) ");
                    qb.push_values(chunk, |mut b, e| {
                        b.push_bind(e.cve.clone())
                            .push_bind(e.epss)
                            .push_bind(e.percentile)
                            .push_bind(e.score_date.clone());
                    });
                    qb.push(
                        " ON CONFLICT (cve) DO UPDATE SET epss = excluded.epss, percentile = excluded.percentile, \
                         score_date = excluded.score_date",
                    );
                    written += qb.build().execute(&mut *self.tx).await.map_err($crate::map_err)?.rows_affected();
                }
                Ok(written)
            }

            async fn epss_for(&mut self, cves: &[String]) -> $crate::Result<Vec<$crate::EpssRow>> {
                use sqlx::Row;
                let mut out = Vec::new();
                let g = |e: sqlx::Error| $crate::map_err(e);
                for chunk in cves.chunks($crate::sql::BATCH_ROWS) {
                    let mut qb =
                        sqlx::QueryBuilder::<$db>::new("SELECT cve, epss, percentile, score_date FROM epss WHERE cve IN (");
                    let mut sep = qb.separated(", ");
                    for c in chunk {
                        sep.push_bind(c.clone());
                    }
                    qb.push(")");
                    for r in qb.build().fetch_all(&mut *self.tx).await.map_err($crate::map_err)? {
                        out.push($crate::EpssRow {
                            cve: r.try_get("cve").map_err(g)?,
                            epss: r.try_get("epss").map_err(g)?,
                            percentile: r.try_get("percentile").map_err(g)?,
                            score_date: r.try_get("score_date").map_err(g)?,
                        });
                    }
                }
                Ok(out)
            }
        }

        #[async_trait::async_trait]
        impl $crate::FindingStore for $tx {
            async fn findings_of_asset(&mut self, asset_id: i64) -> $crate::Result<Vec<$crate::FindingRow>> {
                let sql = format!(
                    "SELECT {FINDING_COLS} FROM findings f JOIN assets a ON a.id = f.asset_id WHERE f.asset_id = $1 \
                     ORDER BY f.package, f.arch, f.advisory_id"
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(asset_id)
                    .fetch_all(&mut *self.tx)
                    .await
                    .map_err($crate::map_err)?;
                rows.iter().map(row_to_finding).collect()
            }

            async fn findings_of_packages(
                &mut self,
                asset_id: i64,
                packages: &[(String, String)],
            ) -> $crate::Result<Vec<$crate::FindingRow>> {
                let mut out = Vec::new();
                for chunk in packages.chunks($crate::sql::BATCH_ROWS) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(format!(
                        "SELECT {FINDING_COLS} FROM findings f JOIN assets a ON a.id = f.asset_id WHERE f.asset_id = "
                    ));
                    qb.push_bind(asset_id);
                    qb.push(" AND (f.package, f.arch) IN (");
                    let mut sep = qb.separated(", ");
                    for (name, arch) in chunk {
                        sep.push("(");
                        sep.push_bind_unseparated(name.clone());
                        sep.push_unseparated(", ");
                        sep.push_bind_unseparated(arch.clone());
                        sep.push_unseparated(")");
                    }
                    qb.push(")");
                    let rows = qb.build().fetch_all(&mut *self.tx).await.map_err($crate::map_err)?;
                    for r in &rows {
                        out.push(row_to_finding(r)?);
                    }
                }
                Ok(out)
            }

            async fn insert_findings(
                &mut self,
                asset_id: i64,
                fs: &[$crate::NewFinding],
                now: jiff::Timestamp,
            ) -> $crate::Result<()> {
                let now = $crate::to_millis(now);
                // 9 parameters per row.
                for chunk in fs.chunks(400) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO findings (asset_id, advisory_id, package, arch, source_package, \
                         installed_version, fixed_version, first_seen, last_seen) ",
                    );
                    qb.push_values(chunk, |mut b, f| {
                        b.push_bind(asset_id)
                            .push_bind(f.advisory_id.clone())
                            .push_bind(f.package.clone())
                            .push_bind(f.arch.clone())
                            .push_bind(f.source_package.clone())
                            .push_bind(f.installed_version.clone())
                            .push_bind(f.fixed_version.clone())
                            .push_bind(now)
                            .push_bind(now);
                    });
                    qb.build().execute(&mut *self.tx).await.map_err($crate::map_err)?;
                }
                Ok(())
            }

            async fn refresh_findings(
                &mut self,
                batch: &[(i64, $crate::NewFinding)],
                now: jiff::Timestamp,
            ) -> $crate::Result<()> {
                // One statement per chunk: UPDATE … FROM (VALUES …) joins the new
                // values by id (both engines; casts keep PostgreSQL's types exact).
                // 4 binds per row keeps a chunk under SQLite's bind limit.
                for chunk in batch.chunks($crate::sql::BATCH_ROWS / 2) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new("WITH v(id, iv, fv, sp) AS (VALUES ");
                    let mut sep = qb.separated(", ");
                    for (id, f) in chunk {
                        sep.push("(CAST(");
                        sep.push_bind_unseparated(*id);
                        sep.push_unseparated(" AS BIGINT), CAST(");
                        sep.push_bind_unseparated(&f.installed_version);
                        sep.push_unseparated(" AS TEXT), CAST(");
                        sep.push_bind_unseparated(&f.fixed_version);
                        sep.push_unseparated(" AS TEXT), CAST(");
                        sep.push_bind_unseparated(&f.source_package);
                        sep.push_unseparated(" AS TEXT))");
                    }
                    qb.push(
                        ") UPDATE findings SET installed_version = v.iv, fixed_version = v.fv, \
                         source_package = v.sp, resolved_at = NULL, last_seen = ",
                    );
                    qb.push_bind($crate::to_millis(now));
                    qb.push(" FROM v WHERE findings.id = v.id");
                    qb.build().execute(&mut *self.tx).await.map_err($crate::map_err)?;
                }
                Ok(())
            }

            async fn resolve_findings(&mut self, ids: &[i64], now: jiff::Timestamp) -> $crate::Result<()> {
                for chunk in ids.chunks($crate::sql::BATCH_ROWS) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new("UPDATE findings SET resolved_at = ");
                    qb.push_bind($crate::to_millis(now));
                    qb.push(" WHERE resolved_at IS NULL AND id IN (");
                    let mut sep = qb.separated(", ");
                    for id in chunk {
                        sep.push_bind(*id);
                    }
                    qb.push(")");
                    qb.build().execute(&mut *self.tx).await.map_err($crate::map_err)?;
                }
                Ok(())
            }

            async fn list_findings(
                &mut self,
                asset_id: Option<i64>,
                include_resolved: bool,
            ) -> $crate::Result<Vec<$crate::FindingRow>> {
                let sql = format!(
                    "SELECT {FINDING_COLS} FROM findings f JOIN assets a ON a.id = f.asset_id \
                     WHERE ($1 IS NULL OR f.asset_id = $1) AND ($2 OR f.resolved_at IS NULL) \
                     ORDER BY a.name, f.package, f.arch, f.advisory_id"
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(asset_id)
                    .bind(include_resolved)
                    .fetch_all(&mut *self.tx)
                    .await
                    .map_err($crate::map_err)?;
                rows.iter().map(row_to_finding).collect()
            }
        }

        #[async_trait::async_trait]
        impl $crate::PlanStore for $tx {
            async fn current_policy(&mut self) -> $crate::Result<Option<$crate::PolicyRow>> {
                use sqlx::Row;
                let row = sqlx::query(
                    "SELECT id, fingerprint, text, applied_by, applied_at, effect FROM policies ORDER BY id DESC LIMIT 1",
                )
                .fetch_optional(&mut *self.tx)
                .await
                .map_err($crate::map_err)?;
                let g = |e: sqlx::Error| $crate::map_err(e);
                row.map(|r| {
                    let effect: String = r.try_get("effect").map_err(g)?;
                    Ok($crate::PolicyRow {
                        id: r.try_get("id").map_err(g)?,
                        fingerprint: r.try_get("fingerprint").map_err(g)?,
                        text: r.try_get("text").map_err(g)?,
                        applied_by: r.try_get("applied_by").map_err(g)?,
                        applied_at: $crate::from_millis(r.try_get("applied_at").map_err(g)?)?,
                        effect: serde_json::from_str(&effect)
                            .map_err(|e| $crate::StoreError::Other(format!("bad policy effect: {e}")))?,
                    })
                })
                .transpose()
            }

            async fn insert_policy(&mut self, p: &$crate::PolicyRow) -> $crate::Result<i64> {
                use sqlx::Row;
                let r = sqlx::query(
                    "INSERT INTO policies (fingerprint, text, applied_by, applied_at, effect) \
                     VALUES ($1, $2, $3, $4, $5) RETURNING id",
                )
                .bind(&p.fingerprint)
                .bind(&p.text)
                .bind(&p.applied_by)
                .bind($crate::to_millis(p.applied_at))
                .bind(p.effect.to_string())
                .fetch_one(&mut *self.tx)
                .await
                .map_err($crate::map_err)?;
                r.try_get("id").map_err($crate::map_err)
            }

            async fn insert_oob_event(&mut self, e: &$crate::OobEventRow) -> $crate::Result<i64> {
                use sqlx::Row;
                let r = sqlx::query(
                    "INSERT INTO oob_events (at, source, cves, findings, deployment) VALUES ($1, $2, $3, $4, $5) \
                     RETURNING id",
                )
                .bind($crate::to_millis(e.at))
                .bind(&e.source)
                .bind(to_json(&e.cves))
                .bind(e.findings)
                .bind(&e.deployment)
                .fetch_one(&mut *self.tx)
                .await
                .map_err($crate::map_err)?;
                r.try_get("id").map_err($crate::map_err)
            }

            async fn list_oob_events(&mut self) -> $crate::Result<Vec<$crate::OobEventRow>> {
                use sqlx::Row;
                let rows = sqlx::query("SELECT id, at, source, cves, findings, deployment FROM oob_events ORDER BY id DESC")
                    .fetch_all(&mut *self.tx)
                    .await
                    .map_err($crate::map_err)?;
                let g = |e: sqlx::Error| $crate::map_err(e);
                rows.iter()
                    .map(|r| {
                        let cves: String = r.try_get("cves").map_err(g)?;
                        Ok($crate::OobEventRow {
                            id: r.try_get("id").map_err(g)?,
                            at: $crate::from_millis(r.try_get("at").map_err(g)?)?,
                            source: r.try_get("source").map_err(g)?,
                            cves: serde_json::from_str(&cves)
                                .map_err(|e| $crate::StoreError::Other(format!("bad oob cves: {e}")))?,
                            findings: r.try_get("findings").map_err(g)?,
                            deployment: r.try_get("deployment").map_err(g)?,
                        })
                    })
                    .collect()
            }

            async fn insert_deployment(&mut self, d: &$crate::DeploymentRow) -> $crate::Result<()> {
                sqlx::query(
                    "INSERT INTO deployments (id, kind, status, reason, patches, assets, created_at, created_by) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&d.id)
                .bind(&d.kind)
                .bind(&d.status)
                .bind(&d.reason)
                .bind(to_json(&d.patches))
                .bind(to_json(&d.assets))
                .bind($crate::to_millis(d.created_at))
                .bind(&d.created_by)
                .execute(&mut *self.tx)
                .await
                .map_err($crate::map_err)?;
                Ok(())
            }

            async fn list_deployments(&mut self) -> $crate::Result<Vec<$crate::DeploymentRow>> {
                use sqlx::Row;
                let rows = sqlx::query(
                    "SELECT id, kind, status, reason, patches, assets, created_at, created_by FROM deployments \
                     ORDER BY created_at DESC, id DESC",
                )
                .fetch_all(&mut *self.tx)
                .await
                .map_err($crate::map_err)?;
                let g = |e: sqlx::Error| $crate::map_err(e);
                let list = |s: String| -> $crate::Result<Vec<String>> {
                    serde_json::from_str(&s).map_err(|e| $crate::StoreError::Other(format!("bad JSON list: {e}")))
                };
                rows.iter()
                    .map(|r| {
                        Ok($crate::DeploymentRow {
                            id: r.try_get("id").map_err(g)?,
                            kind: r.try_get("kind").map_err(g)?,
                            status: r.try_get("status").map_err(g)?,
                            reason: r.try_get("reason").map_err(g)?,
                            patches: list(r.try_get("patches").map_err(g)?)?,
                            assets: list(r.try_get("assets").map_err(g)?)?,
                            created_at: $crate::from_millis(r.try_get("created_at").map_err(g)?)?,
                            created_by: r.try_get("created_by").map_err(g)?,
                        })
                    })
                    .collect()
            }
        }

        #[async_trait::async_trait]
        impl $crate::ScheduleStore for $tx {
            async fn insert_window(&mut self, w: &$crate::WindowRow) -> $crate::Result<bool> {
                let r = sqlx::query(
                    "INSERT INTO windows (name, rrule, dtstart, tz, duration_s, offset_days, cutoff_s, groups, assets, \
                     description, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                     ON CONFLICT (name) DO NOTHING",
                )
                .bind(&w.name)
                .bind(&w.rrule)
                .bind(&w.dtstart)
                .bind(&w.tz)
                .bind(w.duration_secs)
                .bind(w.offset_days)
                .bind(w.cutoff_secs)
                .bind(to_json(&w.groups))
                .bind(to_json(&w.assets))
                .bind(&w.description)
                .bind($crate::to_millis(w.created_at))
                .bind(&w.created_by)
                .execute(&mut *self.tx)
                .await
                .map_err($crate::map_err)?;
                Ok(r.rows_affected() == 1)
            }

            async fn list_windows(&mut self) -> $crate::Result<Vec<$crate::WindowRow>> {
                use sqlx::Row;
                let rows = sqlx::query(
                    "SELECT name, rrule, dtstart, tz, duration_s, offset_days, cutoff_s, groups, assets, description, \
                     created_at, created_by FROM windows ORDER BY name",
                )
                .fetch_all(&mut *self.tx)
                .await
                .map_err($crate::map_err)?;
                let g = |e: sqlx::Error| $crate::map_err(e);
                rows.iter()
                    .map(|r| {
                        Ok($crate::WindowRow {
                            name: r.try_get("name").map_err(g)?,
                            rrule: r.try_get("rrule").map_err(g)?,
                            dtstart: r.try_get("dtstart").map_err(g)?,
                            tz: r.try_get("tz").map_err(g)?,
                            duration_secs: r.try_get("duration_s").map_err(g)?,
                            offset_days: r.try_get("offset_days").map_err(g)?,
                            cutoff_secs: r.try_get("cutoff_s").map_err(g)?,
                            groups: json_list(r.try_get("groups").map_err(g)?)?,
                            assets: json_list(r.try_get("assets").map_err(g)?)?,
                            description: r.try_get("description").map_err(g)?,
                            created_at: $crate::from_millis(r.try_get("created_at").map_err(g)?)?,
                            created_by: r.try_get("created_by").map_err(g)?,
                        })
                    })
                    .collect()
            }

            async fn delete_window(&mut self, name: &str) -> $crate::Result<bool> {
                let r = sqlx::query("DELETE FROM windows WHERE name = $1")
                    .bind(name)
                    .execute(&mut *self.tx)
                    .await
                    .map_err($crate::map_err)?;
                Ok(r.rows_affected() == 1)
            }

            async fn insert_blackout(&mut self, b: &$crate::BlackoutRow) -> $crate::Result<bool> {
                let r = sqlx::query(
                    "INSERT INTO blackouts (name, starts_at, ends_at, reason, owner, groups, assets, created_at, created_by) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (name) DO NOTHING",
                )
                .bind(&b.name)
                .bind($crate::to_millis(b.starts_at))
                .bind($crate::to_millis(b.ends_at))
                .bind(&b.reason)
                .bind(&b.owner)
                .bind(to_json(&b.groups))
                .bind(to_json(&b.assets))
                .bind($crate::to_millis(b.created_at))
                .bind(&b.created_by)
                .execute(&mut *self.tx)
                .await
                .map_err($crate::map_err)?;
                Ok(r.rows_affected() == 1)
            }

            async fn list_blackouts(&mut self) -> $crate::Result<Vec<$crate::BlackoutRow>> {
                use sqlx::Row;
                let rows = sqlx::query(
                    "SELECT name, starts_at, ends_at, reason, owner, groups, assets, created_at, created_by \
                     FROM blackouts ORDER BY starts_at, name",
                )
                .fetch_all(&mut *self.tx)
                .await
                .map_err($crate::map_err)?;
                let g = |e: sqlx::Error| $crate::map_err(e);
                rows.iter()
                    .map(|r| {
                        Ok($crate::BlackoutRow {
                            name: r.try_get("name").map_err(g)?,
                            starts_at: $crate::from_millis(r.try_get("starts_at").map_err(g)?)?,
                            ends_at: $crate::from_millis(r.try_get("ends_at").map_err(g)?)?,
                            reason: r.try_get("reason").map_err(g)?,
                            owner: r.try_get("owner").map_err(g)?,
                            groups: json_list(r.try_get("groups").map_err(g)?)?,
                            assets: json_list(r.try_get("assets").map_err(g)?)?,
                            created_at: $crate::from_millis(r.try_get("created_at").map_err(g)?)?,
                            created_by: r.try_get("created_by").map_err(g)?,
                        })
                    })
                    .collect()
            }

            async fn delete_blackout(&mut self, name: &str) -> $crate::Result<bool> {
                // Explicit, so that the approvals go on engines without cascades too.
                sqlx::query("DELETE FROM blackout_approvals WHERE blackout = $1")
                    .bind(name)
                    .execute(&mut *self.tx)
                    .await
                    .map_err($crate::map_err)?;
                let r = sqlx::query("DELETE FROM blackouts WHERE name = $1")
                    .bind(name)
                    .execute(&mut *self.tx)
                    .await
                    .map_err($crate::map_err)?;
                Ok(r.rows_affected() == 1)
            }

            async fn insert_blackout_approval(&mut self, a: &$crate::BlackoutApprovalRow) -> $crate::Result<bool> {
                let r = sqlx::query(
                    "INSERT INTO blackout_approvals (blackout, deployment, approver, note, approved_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (blackout, deployment) DO NOTHING",
                )
                .bind(&a.blackout)
                .bind(&a.deployment)
                .bind(&a.approver)
                .bind(&a.note)
                .bind($crate::to_millis(a.approved_at))
                .execute(&mut *self.tx)
                .await
                .map_err($crate::map_err)?;
                Ok(r.rows_affected() == 1)
            }

            async fn list_blackout_approvals(&mut self) -> $crate::Result<Vec<$crate::BlackoutApprovalRow>> {
                use sqlx::Row;
                let rows = sqlx::query(
                    "SELECT blackout, deployment, approver, note, approved_at FROM blackout_approvals \
                     ORDER BY blackout, deployment",
                )
                .fetch_all(&mut *self.tx)
                .await
                .map_err($crate::map_err)?;
                let g = |e: sqlx::Error| $crate::map_err(e);
                rows.iter()
                    .map(|r| {
                        Ok($crate::BlackoutApprovalRow {
                            blackout: r.try_get("blackout").map_err(g)?,
                            deployment: r.try_get("deployment").map_err(g)?,
                            approver: r.try_get("approver").map_err(g)?,
                            note: r.try_get("note").map_err(g)?,
                            approved_at: $crate::from_millis(r.try_get("approved_at").map_err(g)?)?,
                        })
                    })
                    .collect()
            }
        }

        #[async_trait::async_trait]
        impl $crate::ExceptionStore for $tx {
            async fn insert_exception(&mut self, e: &$crate::ExceptionRow) -> $crate::Result<bool> {
                let r = sqlx::query(
                    "INSERT INTO exceptions (id, advisory, package, asset, group_name, owner, reason, compensating_control, \
                     approver, created_at, created_by, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                     ON CONFLICT (id) DO NOTHING",
                )
                .bind(&e.id)
                .bind(&e.advisory)
                .bind(&e.package)
                .bind(&e.asset)
                .bind(&e.group)
                .bind(&e.owner)
                .bind(&e.reason)
                .bind(&e.compensating_control)
                .bind(&e.approver)
                .bind($crate::to_millis(e.created_at))
                .bind(&e.created_by)
                .bind($crate::to_millis(e.expires_at))
                .execute(&mut *self.tx)
                .await
                .map_err($crate::map_err)?;
                Ok(r.rows_affected() == 1)
            }

            async fn list_exceptions(&mut self) -> $crate::Result<Vec<$crate::ExceptionRow>> {
                use sqlx::Row;
                let rows = sqlx::query(
                    "SELECT id, advisory, package, asset, group_name, owner, reason, compensating_control, approver, \
                     created_at, created_by, expires_at, revoked_at, revoked_by, revoke_reason, expired_noted_at \
                     FROM exceptions ORDER BY id",
                )
                .fetch_all(&mut *self.tx)
                .await
                .map_err($crate::map_err)?;
                let g = |e: sqlx::Error| $crate::map_err(e);
                rows.iter()
                    .map(|r| {
                        Ok($crate::ExceptionRow {
                            id: r.try_get("id").map_err(g)?,
                            advisory: r.try_get("advisory").map_err(g)?,
                            package: r.try_get("package").map_err(g)?,
                            asset: r.try_get("asset").map_err(g)?,
                            group: r.try_get("group_name").map_err(g)?,
                            owner: r.try_get("owner").map_err(g)?,
                            reason: r.try_get("reason").map_err(g)?,
                            compensating_control: r.try_get("compensating_control").map_err(g)?,
                            approver: r.try_get("approver").map_err(g)?,
                            created_at: $crate::from_millis(r.try_get("created_at").map_err(g)?)?,
                            created_by: r.try_get("created_by").map_err(g)?,
                            expires_at: $crate::from_millis(r.try_get("expires_at").map_err(g)?)?,
                            revoked_at: opt_ts(r.try_get("revoked_at").map_err(g)?)?,
                            revoked_by: r.try_get("revoked_by").map_err(g)?,
                            revoke_reason: r.try_get("revoke_reason").map_err(g)?,
                            expired_noted_at: opt_ts(r.try_get("expired_noted_at").map_err(g)?)?,
                        })
                    })
                    .collect()
            }

            async fn revoke_exception(
                &mut self,
                id: &str,
                at: jiff::Timestamp,
                by: &str,
                reason: &str,
            ) -> $crate::Result<bool> {
                let r = sqlx::query(
                    "UPDATE exceptions SET revoked_at = $2, revoked_by = $3, revoke_reason = $4 \
                     WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2",
                )
                .bind(id)
                .bind($crate::to_millis(at))
                .bind(by)
                .bind(reason)
                .execute(&mut *self.tx)
                .await
                .map_err($crate::map_err)?;
                Ok(r.rows_affected() == 1)
            }

            async fn note_exception_expired(&mut self, id: &str, at: jiff::Timestamp) -> $crate::Result<bool> {
                let r = sqlx::query(
                    "UPDATE exceptions SET expired_noted_at = $2 WHERE id = $1 AND expired_noted_at IS NULL",
                )
                .bind(id)
                .bind($crate::to_millis(at))
                .execute(&mut *self.tx)
                .await
                .map_err($crate::map_err)?;
                Ok(r.rows_affected() == 1)
            }
        }

        #[async_trait::async_trait]
        impl $crate::ChangeStore for $tx {
            async fn ensure_change_record(
                &mut self,
                deployment: &str,
                at: jiff::Timestamp,
                by: &str,
            ) -> $crate::Result<($crate::ChangeRow, bool)> {
                use sqlx::Row;
                let find = "SELECT id, deployment, created_at, created_by FROM change_records WHERE deployment = $1";
                let to_row = |r: &<$db as sqlx::Database>::Row| -> $crate::Result<$crate::ChangeRow> {
                    let g = |e: sqlx::Error| $crate::map_err(e);
                    Ok($crate::ChangeRow {
                        id: r.try_get("id").map_err(g)?,
                        deployment: r.try_get("deployment").map_err(g)?,
                        created_at: $crate::from_millis(r.try_get("created_at").map_err(g)?)?,
                        created_by: r.try_get("created_by").map_err(g)?,
                    })
                };
                if let Some(r) = sqlx::query(find).bind(deployment).fetch_optional(&mut *self.tx).await.map_err($crate::map_err)? {
                    return Ok((to_row(&r)?, false));
                }
                let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM change_records")
                    .fetch_one(&mut *self.tx)
                    .await
                    .map_err($crate::map_err)?
                    .try_get("n")
                    .map_err($crate::map_err)?;
                // Another writer may take a number first: try the next ones.
                for k in 1..=20 {
                    let id = format!("CHG-{:04}", n + k);
                    let r = sqlx::query(
                        "INSERT INTO change_records (id, deployment, created_at, created_by) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(&id)
                    .bind(deployment)
                    .bind($crate::to_millis(at))
                    .bind(by)
                    .execute(&mut *self.tx)
                    .await
                    .map_err($crate::map_err)?;
                    if let Some(found) = sqlx::query(find).bind(deployment).fetch_optional(&mut *self.tx).await.map_err($crate::map_err)? {
                        return Ok((to_row(&found)?, r.rows_affected() == 1));
                    }
                }
                Err($crate::StoreError::Conflict("could not number the change record; retry".into()))
            }

            async fn list_change_records(&mut self) -> $crate::Result<Vec<$crate::ChangeRow>> {
                use sqlx::Row;
                let rows = sqlx::query("SELECT id, deployment, created_at, created_by FROM change_records ORDER BY id")
                    .fetch_all(&mut *self.tx)
                    .await
                    .map_err($crate::map_err)?;
                let g = |e: sqlx::Error| $crate::map_err(e);
                rows.iter()
                    .map(|r| {
                        Ok($crate::ChangeRow {
                            id: r.try_get("id").map_err(g)?,
                            deployment: r.try_get("deployment").map_err(g)?,
                            created_at: $crate::from_millis(r.try_get("created_at").map_err(g)?)?,
                            created_by: r.try_get("created_by").map_err(g)?,
                        })
                    })
                    .collect()
            }

            async fn add_lesson(&mut self, change_id: &str, text: &str, author: &str, at: jiff::Timestamp) -> $crate::Result<i64> {
                use sqlx::Row;
                let r = sqlx::query("INSERT INTO lessons (change_id, text, author, at) VALUES ($1, $2, $3, $4) RETURNING id")
                    .bind(change_id)
                    .bind(text)
                    .bind(author)
                    .bind($crate::to_millis(at))
                    .fetch_one(&mut *self.tx)
                    .await
                    .map_err($crate::map_err)?;
                r.try_get("id").map_err($crate::map_err)
            }

            async fn list_lessons(&mut self) -> $crate::Result<Vec<$crate::LessonRow>> {
                use sqlx::Row;
                let rows = sqlx::query("SELECT id, change_id, text, author, at FROM lessons ORDER BY id")
                    .fetch_all(&mut *self.tx)
                    .await
                    .map_err($crate::map_err)?;
                let g = |e: sqlx::Error| $crate::map_err(e);
                rows.iter()
                    .map(|r| {
                        Ok($crate::LessonRow {
                            id: r.try_get("id").map_err(g)?,
                            change_id: r.try_get("change_id").map_err(g)?,
                            text: r.try_get("text").map_err(g)?,
                            author: r.try_get("author").map_err(g)?,
                            at: $crate::from_millis(r.try_get("at").map_err(g)?)?,
                        })
                    })
                    .collect()
            }
        }

        #[async_trait::async_trait]
        impl $crate::LeaseStore for $tx {
            async fn try_lease(
                &mut self,
                name: &str,
                holder: &str,
                now: jiff::Timestamp,
                until: jiff::Timestamp,
            ) -> $crate::Result<$crate::LeaseOutcome> {
                use sqlx::Row;
                // One statement: the conflict row is locked and re-checked, so of
                // two racers for an expired lease only one update applies.
                let now_ms = $crate::to_millis(now);
                let row = sqlx::query(
                    "INSERT INTO leases (name, holder, acquired_at, expires_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (name) DO UPDATE SET \
                       acquired_at = CASE WHEN leases.holder = excluded.holder THEN leases.acquired_at ELSE excluded.acquired_at END, \
                       holder = excluded.holder, expires_at = excluded.expires_at \
                     WHERE leases.holder = excluded.holder OR leases.expires_at <= excluded.acquired_at \
                     RETURNING acquired_at",
                )
                .bind(name)
                .bind(holder)
                .bind(now_ms)
                .bind($crate::to_millis(until))
                .fetch_optional(&mut *self.tx)
                .await
                .map_err($crate::map_err)?;
                Ok(match row {
                    None => $crate::LeaseOutcome::HeldByOther,
                    Some(r) if r.try_get::<i64, _>("acquired_at").map_err($crate::map_err)? == now_ms => {
                        $crate::LeaseOutcome::Acquired
                    }
                    Some(_) => $crate::LeaseOutcome::Renewed,
                })
            }

            async fn release_lease(&mut self, name: &str, holder: &str) -> $crate::Result<bool> {
                let r = sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
                    .bind(name)
                    .bind(holder)
                    .execute(&mut *self.tx)
                    .await
                    .map_err($crate::map_err)?;
                Ok(r.rows_affected() > 0)
            }

            async fn lease(&mut self, name: &str) -> $crate::Result<Option<$crate::LeaseRow>> {
                use sqlx::Row;
                let Some(r) = sqlx::query("SELECT name, holder, acquired_at, expires_at FROM leases WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&mut *self.tx)
                    .await
                    .map_err($crate::map_err)?
                else {
                    return Ok(None);
                };
                let g = |e: sqlx::Error| $crate::map_err(e);
                Ok(Some($crate::LeaseRow {
                    name: r.try_get("name").map_err(g)?,
                    holder: r.try_get("holder").map_err(g)?,
                    acquired_at: $crate::from_millis(r.try_get("acquired_at").map_err(g)?)?,
                    expires_at: $crate::from_millis(r.try_get("expires_at").map_err(g)?)?,
                }))
            }
        }

        #[async_trait::async_trait]
        impl $crate::EventStore for $tx {
            async fn enqueue_event(&mut self, e: &$crate::NewEvent) -> $crate::Result<i64> {
                use sqlx::Row;
                let r = sqlx::query(
                    "INSERT INTO events (at, kind, version, actor, subject, payload, audit_seq) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                )
                .bind($crate::to_millis(e.at))
                .bind(&e.kind)
                .bind(e.version)
                .bind(&e.actor)
                .bind(&e.subject)
                .bind(e.payload.to_string())
                .bind(e.audit_seq)
                .fetch_one(&mut *self.tx)
                .await
                .map_err($crate::map_err)?;
                r.try_get("id").map_err($crate::map_err)
            }

            async fn events_after(&mut self, after: i64, limit: i64) -> $crate::Result<Vec<$crate::EventRow>> {
                use sqlx::Row;
                let rows = sqlx::query(
                    "SELECT id, at, kind, version, actor, subject, payload, audit_seq FROM events \
                     WHERE id > $1 ORDER BY id LIMIT $2",
                )
                .bind(after)
                .bind(limit)
                .fetch_all(&mut *self.tx)
                .await
                .map_err($crate::map_err)?;
                rows.iter()
                    .map(|r| {
                        let g = |e: sqlx::Error| $crate::map_err(e);
                        let payload: String = r.try_get("payload").map_err(g)?;
                        Ok($crate::EventRow {
                            id: r.try_get("id").map_err(g)?,
                            event: $crate::NewEvent {
                                at: $crate::from_millis(r.try_get("at").map_err(g)?)?,
                                kind: r.try_get("kind").map_err(g)?,
                                version: r.try_get("version").map_err(g)?,
                                actor: r.try_get("actor").map_err(g)?,
                                subject: r.try_get("subject").map_err(g)?,
                                payload: serde_json::from_str(&payload)
                                    .map_err(|e| $crate::StoreError::Other(format!("bad event payload: {e}")))?,
                                audit_seq: r.try_get("audit_seq").map_err(g)?,
                            },
                        })
                    })
                    .collect()
            }
        }

        #[async_trait::async_trait]
        impl $crate::Tx for $tx {
            async fn commit(self: Box<Self>) -> $crate::Result<()> {
                self.tx.commit().await.map_err($crate::map_err)
            }
        }
    };
}

pub(crate) use impl_tx;
