-- wrk script: GET <prefix><id> for the ids in the file $IDS, one after another
-- (benches/wrk/run.sh writes the file).
local ids = {}
for line in io.lines(os.getenv("IDS")) do
  ids[#ids + 1] = line
end
local prefix = os.getenv("PREFIX")
local i = 0

request = function()
  i = i % #ids + 1
  return wrk.format("GET", prefix .. ids[i])
end

-- Non-2xx answers are counted by wrk ("Non-2xx or 3xx responses"); run.sh fails on them.
