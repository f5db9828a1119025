-- A provisional sfid for rows created through the proxy, so that a transaction can point
-- one new row at another before Salesforce has assigned either an Id. Mirrored tables
-- take `sfpg.provisional_sfid()` as the default of `sfid`; at COMMIT the proxy sends the
-- creates in dependency order and replaces every provisional value with the real Id.
--
-- `~` followed by 17 digits: 18 characters, as `varchar(18)` holds, and never a Salesforce
-- Id, which is 15 or 18 letters and digits. A sequence keeps the values unique across
-- sessions, since `sfid` is unique and two open transactions must not collide.
CREATE SEQUENCE sfpg.provisional_sfid_seq AS bigint MINVALUE 1 NO CYCLE;

CREATE FUNCTION sfpg.provisional_sfid() RETURNS varchar(18)
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT '~' || lpad(nextval('sfpg.provisional_sfid_seq')::text, 17, '0')
$$;

GRANT EXECUTE ON FUNCTION sfpg.provisional_sfid() TO PUBLIC;
