DROP TABLE postcode_imports;
DROP TABLE postcodes;
