-- The operator-loaded CBS postcode table (`wor-hub postcodes import`): postcode to
-- municipality, for patients whose address has a postcode but no municipality.
-- `postcode` is a PC4 ("2771") or a compact upper-case PC6 ("2771AB");
-- `municipality` is a CBS code in the form GM0484. Replaced as a whole on each import.
-- COLLATE "C": byte order, so the PC4 range lookup ("2771" .. "2771ZZ") means the
-- same on both backends.
CREATE TABLE postcodes (
    postcode TEXT COLLATE "C" PRIMARY KEY,
    municipality TEXT NOT NULL
);

-- The last import, one row: when (microseconds since the Unix epoch), from which file,
-- how many rows.
CREATE TABLE postcode_imports (
    imported BIGINT NOT NULL,
    source TEXT NOT NULL,
    row_count BIGINT NOT NULL
);
