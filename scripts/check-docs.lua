-- Every reference in the documentation resolves inside the repository:
--   * each relative Markdown link of README.md, CHANGELOG.md and docs/*.md names a file that
--     exists, and its #anchor (if any) a heading of that file (GitHub's anchor rules);
--   * each docs/<page>.md that code, specs, scripts, examples or types/ mention exists;
--   * nothing points at files outside the repository (../ above its root);
--   * every ``` code block is closed (an open one would hide the links after it).
-- Usage: luajit scripts/check-docs.lua   (from anywhere; prints "N passed, N failed")
local root = arg[0]:match("^(.*)/scripts/[^/]*$") or "."

local function read(path)
  local f = io.open(root .. "/" .. path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local function lines_of(cmd)
  local out = {}
  local p = assert(io.popen(cmd))
  for l in p:lines() do out[#out + 1] = l end
  p:close()
  return out
end

local function is_dir(path)
  local r = os.execute("test -d '" .. root .. "/" .. path .. "'")
  return r == 0 or r == true -- Lua 5.1 / LuaJIT: a status; 5.2+: true
end

local passed, failed = 0, 0
local function check(ok, what)
  if ok then passed = passed + 1 else failed = failed + 1; print("FAIL " .. what) end
end

-- GitHub's heading anchors: lower case, punctuation dropped (but - and _), spaces to -.
local function anchors_of(text)
  local set, seen = {}, {}
  local in_code = false
  for line in text:gmatch("[^\n]*") do
    if line:match("^```") then in_code = not in_code end
    local h = not in_code and line:match("^#+%s+(.-)%s*$")
    if h then
      local a = h:lower():gsub("[^%w%s%-_]", ""):gsub("%s", "-")
      local n = seen[a]
      seen[a] = (n or 0) + 1
      set[n and (a .. "-" .. n) or a] = true
    end
  end
  return set
end

-- Normalize a path relative to the repository root; nil when it leaves the repository.
local function normalize(path)
  local parts = {}
  for part in path:gmatch("[^/]+") do
    if part == ".." then
      if #parts == 0 then return nil end
      parts[#parts] = nil
    elseif part ~= "." then
      parts[#parts + 1] = part
    end
  end
  return table.concat(parts, "/")
end

local docs = { "README.md", "CHANGELOG.md" }
for _, f in ipairs(lines_of("cd '" .. root .. "' && ls docs/*.md 2>/dev/null")) do docs[#docs + 1] = f end

local links = 0
for _, doc in ipairs(docs) do
  local text = assert(read(doc), doc .. " missing")
  local fences = 0
  for _ in ("\n" .. text):gmatch("\n```") do fences = fences + 1 end
  check(fences % 2 == 0, doc .. ": an unclosed ``` code block (" .. fences .. " fences)")
  local dir = doc:match("^(.*)/") or ""
  -- Links outside code blocks and inline code.
  local prose = text:gsub("```.-```", ""):gsub("`[^`\n]*`", "")
  for target in prose:gmatch("%]%(([^)%s]+)%)") do
    if not target:match("^%a[%w+.-]*:") then -- not http:, https:, mailto:
      links = links + 1
      local file, anchor = target:match("^([^#]*)#?(.*)$")
      local path = file == "" and doc or normalize((dir ~= "" and dir .. "/" or "") .. file)
      local body = path and read(path)
      if not path then
        check(false, doc .. ": " .. target .. " points outside the repository")
      elseif not body and not is_dir(path) then
        check(false, doc .. ": " .. target .. " -> " .. path .. " does not exist")
      elseif anchor ~= "" then
        check(body and path:match("%.md$") and anchors_of(body)[anchor],
              doc .. ": " .. target .. ": no heading #" .. anchor .. " in " .. path)
      else
        check(true, "")
      end
    end
  end
end
print(("ok   %d relative links in %d Markdown files"):format(links, #docs))

-- docs/ pages named anywhere else.
local named = lines_of("cd '" .. root .. "' && grep -rhoE 'docs/[A-Za-z0-9_-]+\\.md' "
                       .. "lua spec scripts examples bench/lua bench/run.lua types csrc CMakeLists.txt Makefile "
                       .. "2>/dev/null | sort -u")
for _, page in ipairs(named) do
  check(read(page) ~= nil, page .. " is named in the code but does not exist")
end
print(("ok   %d docs/ pages named in code, specs, scripts and types"):format(#named))

print(("%d passed, %d failed"):format(passed, failed))
os.exit(failed == 0 and 0 or 1)
