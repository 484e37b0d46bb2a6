// Answers every vector of node-semver's test fixtures with the `semver`
// package itself. Usage: generate.js NODE_SEMVER_CHECKOUT > fixture.json
'use strict'
const path = require('path')
const semver = require('semver')
const fixtures = path.join(process.argv[2], 'test', 'fixtures')
const load = (name) => require(path.join(fixtures, name))

// upshift has no `loose` mode: vectors that need it are kept, marked skipped.
const optionsOf = (options) => {
  if (options === undefined || options === null || options === false) {
    return { ok: {} }
  }
  if (options === true || options.loose) {
    return { skip: '`loose` mode has no counterpart in upshift' }
  }
  if (typeof options !== 'object') {
    return { skip: 'options that are not an object' }
  }
  const known = Object.keys(options).filter(k => k !== 'includePrerelease')
  if (known.length) {
    return { skip: `options ${known.join(', ')} have no counterpart in upshift` }
  }
  return { ok: { includePrerelease: !!options.includePrerelease } }
}

const rows = []
const skip = (fixture, row, reason) => rows.push({ kind: 'skipped', fixture, reason, row: JSON.stringify(row) })
const isString = (x) => typeof x === 'string'

for (const row of load('comparisons.js')) {
  const [a, b, options] = row
  const o = optionsOf(options)
  if (o.skip) { skip('comparisons.js', row, o.skip); continue }
  rows.push({ kind: 'compare', fixture: 'comparisons.js', a, b, answer: semver.compare(a, b, o.ok) })
  rows.push({ kind: 'compare', fixture: 'comparisons.js', a: b, b: a, answer: semver.compare(b, a, o.ok) })
}
for (const row of load('equality.js')) {
  const [a, b, loose] = row
  const o = optionsOf(loose)
  if (o.skip) { skip('equality.js', row, o.skip); continue }
  rows.push({ kind: 'compare', fixture: 'equality.js', a, b, answer: semver.compare(a, b, o.ok) })
}
for (const name of ['range-include.js', 'range-exclude.js']) {
  for (const row of load(name)) {
    const [range, version, options] = row
    const o = optionsOf(options)
    if (o.skip) { skip(name, row, o.skip); continue }
    if (!isString(range) || !isString(version)) { skip(name, row, 'a value that is not a string'); continue }
    rows.push({
      kind: 'satisfies', fixture: name, range, version,
      include_prerelease: !!o.ok.includePrerelease,
      answer: semver.satisfies(version, range, o.ok),
    })
  }
}
for (const row of load('range-parse.js')) {
  const [range, , options] = row
  const o = optionsOf(options)
  if (o.skip) { skip('range-parse.js', row, o.skip); continue }
  let answer
  try {
    answer = new semver.Range(range, o.ok).range
  } catch (e) {
    answer = null
  }
  rows.push({ kind: 'range_parse', fixture: 'range-parse.js', range, include_prerelease: !!o.ok.includePrerelease, answer })
}
for (const row of load('invalid-versions.js')) {
  const [value, , options] = row
  const o = optionsOf(options)
  if (o.skip) { skip('invalid-versions.js', row, o.skip); continue }
  if (!isString(value)) { skip('invalid-versions.js', row, 'a value that is not a string'); continue }
  rows.push({ kind: 'valid', fixture: 'invalid-versions.js', input: value, answer: semver.valid(value, o.ok) })
}
for (const row of load('valid-versions.js')) {
  const [value] = row
  const v = semver.parse(value)
  rows.push({
    kind: 'parse', fixture: 'valid-versions.js', input: value,
    answer: v && { major: v.major, minor: v.minor, patch: v.patch, prerelease: v.prerelease, build: v.build, version: v.version },
  })
}
const notModelled = {
  'increments.js': '`inc` has no counterpart in upshift',
  'truncations.js': 'truncating a version has no counterpart in upshift',
  'comparator-intersection.js': 'upshift does not intersect comparators',
  'range-intersection.js': 'upshift does not intersect ranges',
}
for (const [name, hilo] of [['version-gt-range.js', '>'], ['version-not-gt-range.js', '>'],
  ['version-lt-range.js', '<'], ['version-not-lt-range.js', '<']]) {
  for (const row of load(name)) {
    const [range, version, options] = row
    const o = optionsOf(options)
    if (o.skip) { skip(name, row, o.skip); continue }
    if (!isString(range) || !isString(version)) { skip(name, row, 'a value that is not a string'); continue }
    let answer
    try {
      answer = semver.outside(version, range, hilo, o.ok)
    } catch (e) {
      answer = null
    }
    rows.push({ kind: 'outside', fixture: name, range, version, hilo, include_prerelease: !!o.ok.includePrerelease, answer })
  }
}
for (const [name, reason] of Object.entries(notModelled)) {
  for (const row of load(name)) {
    skip(name, row, reason)
  }
}

const head = { generated_by: `tests/npm/generate: semver ${require('semver/package.json').version} and node-semver's test fixtures`, library: `semver ${require('semver/package.json').version}` }
process.stdout.write(JSON.stringify(head).slice(0, -1) + ', "vectors": [\n' + rows.map(r => JSON.stringify(r)).join(',\n') + '\n]}\n')
