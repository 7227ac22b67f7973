-- wrk script for benches/load.sh: every request carries one of many session cookies, taken in
-- turn, so that a run meets as many distinct sessions as the file holds.
-- wrk -s benches/sessions.lua URL -- FILE [COOKIE_NAME]
-- FILE holds one cookie value a line. The requests are built once, in init (wrk's -H headers,
-- its Host and the cookie), so a request costs wrk one table lookup, whatever the target.
local reqs, n, i = {}, 0, 0

function init(args)
  local name = args[2] or "vg"
  for line in io.lines(args[1]) do
    if line ~= "" then
      local headers = {}
      for k, v in pairs(wrk.headers) do headers[k] = v end
      headers["Cookie"] = name .. "=" .. line
      n = n + 1
      reqs[n] = wrk.format(nil, nil, headers)
    end
  end
  assert(n > 0, "no cookies in " .. args[1])
end

function request()
  i = i % n + 1
  return reqs[i]
end
