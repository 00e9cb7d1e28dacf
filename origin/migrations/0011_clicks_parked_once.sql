-- A click event is parked once. An ingest batch that parked an event and then met an outage
-- is retried whole by the edge's queue, and parked the event again: clicks_parked filled with
-- copies. A retried event is the same JSON text (the origin serializes the same bounded
-- event), so the key is a hash of that text. Not `event ->> 'id'`: PostgreSQL cannot read a
-- field of a json value holding a \u0000 escape anywhere, one of the values that gets an
-- event refused and parked, so such an index would refuse the very parks it is for.
DELETE FROM clicks_parked AS later
    USING clicks_parked AS earlier
    WHERE md5(later.event::text) = md5(earlier.event::text)
      AND later.event::text = earlier.event::text
      AND later.id > earlier.id;

CREATE UNIQUE INDEX clicks_parked_event ON clicks_parked (md5(event::text));
