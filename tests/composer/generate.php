<?php
// Regenerates tests/fixtures/composer-semver.json with Composer's own
// composer/semver library (run by tests/composer/generate with a checkout of
// composer/semver): how Composer orders real Magento versions, which
// requirements they satisfy, which strings it rejects, and the answer of the
// library to every vector of its own test suite's data providers.
// upshift's `composer` scheme must agree with every row.
[$self, $checkout, $release] = $argv;
spl_autoload_register(function ($class) use ($checkout) {
    $prefix = 'Composer\\Semver\\';
    if (strpos($class, $prefix) === 0) {
        $file = $checkout . '/src/' . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
        if (is_file($file)) {
            require $file;
        }
    }
});
require __DIR__ . '/suite.php';

use Composer\Semver\Comparator;
use Composer\Semver\Semver;
use Composer\Semver\VersionParser;

// Real release trains (magento/product-community-edition), with pre-releases.
$versions = [
    '2.3.7', '2.3.7-p1', '2.3.7-p2', '2.3.7-p3', '2.3.7-p4',
    '2.4.0', '2.4.0-p1', '2.4.1', '2.4.1-p1', '2.4.2', '2.4.2-p1', '2.4.2-p2',
    '2.4.3', '2.4.3-p1', '2.4.3-p3', '2.4.4', '2.4.4-p1', '2.4.4-p9', '2.4.4-p18',
    '2.4.5', '2.4.5-p1', '2.4.5-p10', '2.4.5-p17',
    '2.4.6', '2.4.6-p1', '2.4.6-p2', '2.4.6-p3', '2.4.6-p9', '2.4.6-p10', '2.4.6-p13', '2.4.6-p15',
    '2.4.7-alpha1', '2.4.7-beta1', '2.4.7-beta2', '2.4.7-RC1', '2.4.7', '2.4.7-p1', '2.4.7-p10',
    '2.4.8-beta1', '2.4.8', '2.4.8-p5', '2.4.9-alpha1', '3.0.0',
    // Spellings Composer accepts for the same versions.
    'v2.4.6', '2.4.6-P3', '2.4.6-pl3', '2.4.6-patch3', '2.4.7-rc1', '2.4.7-b1', '2.4.7.0',
];
$parser = new VersionParser();

$sorted = Semver::sort($versions);
$comparisons = [];
// Composer compares normalized versions (as its solver and Semver::sort do);
// Comparator on raw spellings such as `v2.4.6` would compare text instead.
$add = function ($a, $b) use (&$comparisons, $parser) {
    $na = $parser->normalize($a);
    $nb = $parser->normalize($b);
    $cmp = Comparator::lessThan($na, $nb) ? -1 : (Comparator::greaterThan($na, $nb) ? 1 : 0);
    $comparisons[] = ['a' => $a, 'b' => $b, 'cmp' => $cmp];
};
for ($i = 0; $i + 1 < count($sorted); $i++) {
    $add($sorted[$i], $sorted[$i + 1]);
}
foreach ([
    ['2.4.6-p2', '2.4.6-p10'], ['2.4.6-p10', '2.4.6-p9'], ['2.4.6', '2.4.6-p1'], ['2.4.6-p15', '2.4.7-beta1'],
    ['2.4.6-p15', '2.4.7-alpha1'], ['2.4.7-RC1', '2.4.7'], ['2.4.7-beta2', '2.4.7-RC1'], ['2.4.6-p3', '2.4.6-pl3'],
    ['2.4.6-P3', '2.4.6-p3'], ['v2.4.6', '2.4.6'], ['2.4.7.0', '2.4.7'], ['2.4.7-rc1', '2.4.7-RC1'],
    ['2.4.7-b1', '2.4.7-beta1'], ['2.4.4-p18', '2.4.5'], ['2.4.5-p17', '2.4.6'], ['2.3.7-p4', '2.4.0'],
    ['2.4.8-p5', '2.4.9-alpha1'], ['3.0.0', '2.4.8-p5'], ['2.4.6-patch3', '2.4.6-p3'], ['2.4.6-p13', '2.4.6-p3'],
] as [$a, $b]) {
    $add($a, $b);
    $add($b, $a);
}

$requirements = [
    '~2.4.6', '2.4.6.*', '>=2.4.6 <2.4.7', '>=2.4.6, <2.4.7', '^2.4', '2.4.6', '=2.4.6-p3', '!=2.4.7',
    '>=2.4.6-p3', '>2.4.6', '<=2.4.6', '<2.4.7', '2.4.0 - 2.4.6', '2.4.0 - 2.4', '~2.4.6 || ^3.0',
    '>=2.4.7 <2.4.9', '2.4.*', '*', '~2.4', '^2.4.6-p3', '>=2.4.4-p1 <2.4.5', 'v2.4.6.*', '~2.4.6.0',
];
$sample = ['2.4.5-p17', '2.4.6', '2.4.6-p1', '2.4.6-p3', '2.4.6-p15', '2.4.7-beta1', '2.4.7', '2.4.8-p5', '3.0.0', '2.4.4-p9'];
$satisfies = [];
foreach ($requirements as $req) {
    foreach ($sample as $version) {
        $satisfies[] = ['requirement' => $req, 'version' => $version, 'satisfies' => Semver::satisfies($version, $req)];
    }
}

$rejected_versions = [];
foreach (['2.4.3-ext-7', '2.3.7-p4-ext-7', '2.4.x', 'two.four', '2.4.6-foo', '1.2.3.4.5', '', '2.4.7-p1.*'] as $v) {
    try { $parser->normalize($v); } catch (\UnexpectedValueException $e) { $rejected_versions[] = $v; }
}
$rejected_requirements = [];
foreach (['2.4.7-p1.*', '2.4.3-ext-7', '>=two', '~', '2.4.6 ||| 2.4.7'] as $r) {
    try { $parser->parseConstraints($r); } catch (\UnexpectedValueException $e) { $rejected_requirements[] = $r; }
}

$out = [
    'generated_by' => 'tests/composer/generate: composer/semver ' . $release . ' (its src/ and tests/), PHP ' . PHP_VERSION,
    'library' => 'composer/semver ' . $release,
    'suite' => suite_vectors($checkout),
    'sorted' => $sorted,
    'comparisons' => $comparisons,
    'satisfies' => $satisfies,
    'rejected_versions' => $rejected_versions,
    'rejected_requirements' => $rejected_requirements,
];
echo json_encode($out, JSON_PRETTY_PRINT | JSON_UNESCAPED_SLASHES), "\n";
