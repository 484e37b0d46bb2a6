<?php
// The vectors of composer/semver's own test suite (the data providers of
// VersionParserTest, SemverTest, ComparatorTest, Constraint/*, IntervalsTest
// and SubsetsTest), each answered by the library itself. A tiny stand-in for
// PHPUnit's TestCase lets the test classes load without PHPUnit.

namespace PHPUnit\Framework {
    if (!class_exists(TestCase::class)) {
        abstract class TestCase
        {
        }
    }
}

namespace {
    use Composer\Semver\Comparator;
    use Composer\Semver\Constraint\Bound;
    use Composer\Semver\Constraint\Constraint;
    use Composer\Semver\Constraint\ConstraintInterface;
    use Composer\Semver\Constraint\MatchAllConstraint;
    use Composer\Semver\Constraint\MatchNoneConstraint;
    use Composer\Semver\Constraint\MultiConstraint;
    use Composer\Semver\Intervals;
    use Composer\Semver\Semver;
    use Composer\Semver\VersionParser;

    /** Calls a data provider, static or not. */
    function provide($class, $method)
    {
        $reflection = new ReflectionMethod($class, $method);
        $reflection->setAccessible(true);
        $instance = $reflection->isStatic() ? null : (new ReflectionClass($class))->newInstanceWithoutConstructor();
        return $reflection->invoke($instance);
    }

    /** A constraint object as JSON the Rust test can rebuild. */
    function constraint_json(ConstraintInterface $c)
    {
        if ($c instanceof MatchAllConstraint) {
            return '*';
        }
        if ($c instanceof MatchNoneConstraint) {
            return '[]';
        }
        if ($c instanceof Constraint) {
            return ['op' => $c->getOperator(), 'version' => $c->getVersion()];
        }
        if ($c instanceof MultiConstraint) {
            return ['conjunctive' => $c->isConjunctive(), 'constraints' => array_map('constraint_json', $c->getConstraints())];
        }
        throw new \LogicException(get_class($c));
    }

    /** Runs `$f`; an exception is the answer `{"error": message}`. */
    function answer(callable $f)
    {
        try {
            return ['ok' => $f()];
        } catch (\Exception $e) {
            return ['error' => get_class($e) . ': ' . $e->getMessage()];
        }
    }

    function bounds(ConstraintInterface $c)
    {
        return ['lower' => (string) $c->getLowerBound(), 'upper' => (string) $c->getUpperBound()];
    }

    function suite_vectors($checkout)
    {
        foreach (['VersionParserTest', 'SemverTest', 'ComparatorTest', 'IntervalsTest', 'SubsetsTest',
                  'Constraint/ConstraintTest', 'Constraint/MultiConstraintTest'] as $file) {
            require_once $checkout . '/tests/' . $file . '.php';
        }
        $parser = new VersionParser();
        $out = [];
        $add = function ($kind, $source, $name, array $vector) use (&$out) {
            $out[] = ['kind' => $kind, 'source' => $source, 'name' => (string) $name] + $vector;
        };
        $normalize = function ($input, $full = null) use ($parser) {
            return answer(function () use ($parser, $input, $full) { return $parser->normalize($input, $full); });
        };
        $parse = function ($input) use ($parser) {
            return answer(function () use ($parser, $input) { return (string) $parser->parseConstraints($input); });
        };
        $T = 'Composer\Semver\VersionParserTest';

        foreach (provide($T, 'numericAliasVersions') as $name => $row) {
            $add('numeric_alias_prefix', 'VersionParserTest::numericAliasVersions', $name,
                ['input' => $row[0], 'answer' => $parser->parseNumericAliasPrefix($row[0])]);
        }
        foreach (provide($T, 'isValidVersions') as $name => $row) {
            $add('is_valid', 'VersionParserTest::isValidVersions', $name,
                ['input' => $row[0], 'answer' => $parser->isValid($row[0])]);
        }
        foreach (['successfulNormalizedVersions', 'failingNormalizedVersions'] as $provider) {
            foreach (provide($T, $provider) as $name => $row) {
                $add('normalize', "VersionParserTest::$provider", $name, ['input' => $row[0], 'answer' => $normalize($row[0])]);
            }
        }
        foreach (['failingNormalizedVersionsWithBadAlias', 'failingNormalizedVersionsWithBadAliasee'] as $provider) {
            foreach (provide($T, $provider) as $name => $row) {
                preg_match('{^([^,\s#]+)(?:#[^ ]+)? +as +([^,\s]+)$}', $row[0], $match);
                foreach ([1, 2] as $i) {
                    $add('normalize', "VersionParserTest::$provider", "$name ($i)",
                        ['input' => $match[$i], 'full' => $row[0], 'answer' => $normalize($match[$i], $row[0])]);
                }
            }
        }
        foreach (provide($T, 'successfulNormalizedBranches') as $name => $row) {
            $add('normalize_branch', 'VersionParserTest::successfulNormalizedBranches', $name,
                ['input' => $row[0], 'answer' => $parser->normalizeBranch($row[0])]);
        }
        foreach (provide($T, 'stabilityProvider') as $name => $row) {
            $add('parse_stability', 'VersionParserTest::stabilityProvider', $name,
                ['input' => $row[1], 'answer' => VersionParser::parseStability($row[1])]);
        }
        foreach (['simpleConstraints', 'wildcardConstraints', 'tildeConstraints', 'caretConstraints', 'hyphenConstraints',
                  'constraintProvider', 'multiConstraintProvider', 'multiConstraintProvider2', 'failingConstraints'] as $provider) {
            foreach (provide($T, $provider) as $name => $row) {
                $add('parse_constraints', "VersionParserTest::$provider", $name, ['input' => $row[0], 'answer' => $parse($row[0])]);
            }
        }
        // Strings the test methods use outside data providers.
        foreach (['1.0@dev', '>=1.0@beta', 'dev-load-varnish-only-when-used as ^2.0@dev',
                  'dev-load-varnish-only-when-used@dev as ^2.0@dev', '1.0.x-dev#abcd123', '1.0.x-dev#trunk/@123',
                  '1.0#abcd123', '1.0#trunk/@123', '~>1.2', '>=1.1.0-alpha4,<1.2.x-dev', '>=1.1.0-alpha4,<1.2-beta2',
                  '>2.0@stable,<=3.0@dev', '>2.0@stable,@dev', '>2.0@stable || 0@dev', '~0.1 || ~1.0 !=1.0.1'] as $input) {
            $add('parse_constraints', 'VersionParserTest (test methods)', $input, ['input' => $input, 'answer' => $parse($input)]);
        }
        $add('satisfies', 'VersionParserTest::testComplexConjunctive', '~0.1 || ~1.0 !=1.0.1',
            ['version' => '1.0.1', 'constraint' => '~0.1 || ~1.0 !=1.0.1', 'answer' => Semver::satisfies('1.0.1', '~0.1 || ~1.0 !=1.0.1')]);

        $S = 'Composer\Semver\SemverTest';
        foreach (provide($S, 'satisfiesProvider') as $name => $row) {
            [, $version, $constraint] = $row;
            $add('satisfies', 'SemverTest::satisfiesProvider', $name,
                ['version' => $version, 'constraint' => $constraint, 'answer' => Semver::satisfies($version, $constraint)]);
        }
        foreach (provide($S, 'satisfiedByProvider') as $name => $row) {
            [$constraint, $versions] = $row;
            $add('satisfied_by', 'SemverTest::satisfiedByProvider', $name,
                ['constraint' => $constraint, 'versions' => $versions, 'answer' => Semver::satisfiedBy($versions, $constraint)]);
        }
        foreach (provide($S, 'sortProvider') as $name => $row) {
            $add('sort', 'SemverTest::sortProvider', $name,
                ['versions' => $row[0], 'answer' => ['sort' => Semver::sort($row[0]), 'rsort' => Semver::rsort($row[0])]]);
        }

        $C = 'Composer\Semver\ComparatorTest';
        foreach (['greaterThan' => '>', 'greaterThanOrEqualTo' => '>=', 'lessThan' => '<',
                  'lessThanOrEqualTo' => '<=', 'equalTo' => '==', 'notEqualTo' => '!='] as $method => $op) {
            foreach (provide($C, $method . 'Provider') as $name => $row) {
                $add('compare', "ComparatorTest::{$method}Provider", $name,
                    ['a' => $row[0], 'op' => $op, 'b' => $row[1], 'answer' => Comparator::$method($row[0], $row[1])]);
            }
        }
        foreach (provide($C, 'compareProvider') as $name => $row) {
            $add('compare', 'ComparatorTest::compareProvider', $name,
                ['a' => $row[0], 'op' => $row[1], 'b' => $row[2], 'answer' => Comparator::compare($row[0], $row[1], $row[2])]);
        }

        $K = 'Composer\Semver\Constraint\ConstraintTest';
        foreach (['successfulVersionMatches', 'failingVersionMatches', 'matrix'] as $provider) {
            foreach (provide($K, $provider) as $name => $row) {
                $require = new Constraint($row[0], $row[1]);
                $provide = new Constraint($row[2], $row[3]);
                $add('constraint_matches', "ConstraintTest::$provider", $name, [
                    'require' => constraint_json($require), 'provide' => constraint_json($provide),
                    'answer' => ['forward' => $require->matches($provide), 'backward' => $provide->matches($require),
                                 'intersect' => Intervals::haveIntersections($require, $provide),
                                 'compact' => Intervals::compactConstraint($require)->matches(Intervals::compactConstraint($provide))],
                ]);
            }
        }
        foreach (provide($K, 'bounds') as $name => $row) {
            $c = new Constraint($row[0], $row[1]);
            $add('bounds', 'ConstraintTest::bounds', $name, ['constraint' => constraint_json($c), 'answer' => bounds($c)]);
        }
        $M = 'Composer\Semver\Constraint\MultiConstraintTest';
        foreach (provide($M, 'bounds') as $name => $row) {
            $c = new MultiConstraint($row[0], $row[1]);
            $add('bounds', 'MultiConstraintTest::bounds', $name, ['constraint' => constraint_json($c), 'answer' => bounds($c)]);
        }
        foreach (provide($M, 'boundsIntegration') as $name => $row) {
            $c = $parser->parseConstraints($row[0]);
            $add('bounds', 'MultiConstraintTest::boundsIntegration', $name, ['constraint' => constraint_json($c), 'input' => $row[0], 'answer' => bounds($c)]);
        }
        foreach (provide($M, 'multiConstraintOptimizations') as $name => $row) {
            $add('parse_constraints', 'MultiConstraintTest::multiConstraintOptimizations', $name,
                ['input' => $row[0], 'answer' => $parse($row[0])]);
        }

        $I = 'Composer\Semver\IntervalsTest';
        foreach (provide($I, 'compactProvider') as $name => $row) {
            [, $parts, $conjunctive] = $row;
            $add('compact', 'IntervalsTest::compactProvider', $name, ['parts' => $parts, 'conjunctive' => $conjunctive,
                'answer' => answer(function () use ($parser, $parts, $conjunctive) {
                    return (string) Intervals::compactConstraint(new MultiConstraint(array_map([$parser, 'parseConstraints'], $parts), $conjunctive));
                })]);
        }
        foreach (provide($I, 'intervalsProvider') as $name => $row) {
            $input = $row[1];
            $add('intervals', 'IntervalsTest::intervalsProvider', $name, [
                'input' => is_string($input) ? $input : ['object' => constraint_json($input)],
                'answer' => answer(function () use ($parser, $input) {
                    $result = Intervals::get(is_string($input) ? $parser->parseConstraints($input) : $input);
                    array_walk_recursive($result, function (&$c) {
                        if ($c instanceof \Composer\Semver\Interval) {
                            $c = ['start' => (string) $c->getStart(), 'end' => (string) $c->getEnd()];
                        } elseif ($c instanceof ConstraintInterface) {
                            $c = (string) $c;
                        }
                    });
                    return $result;
                }),
            ]);
        }
        $U = 'Composer\Semver\SubsetsTest';
        foreach (['subsets', 'notSubsets'] as $provider) {
            foreach (provide($U, $provider) as $name => $row) {
                $add('subset', "SubsetsTest::$provider", $name, ['a' => $row[0], 'b' => $row[1],
                    'answer' => Intervals::isSubsetOf($parser->parseConstraints($row[0]), $parser->parseConstraints($row[1]))]);
            }
        }
        return $out;
    }
}
