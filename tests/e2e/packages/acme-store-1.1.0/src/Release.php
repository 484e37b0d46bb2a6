<?php
namespace Acme\Store;

/** The release this package is, and where its schema migrations are. */
final class Release
{
    public const VERSION = '1.1.0';

    public static function migrations(): string
    {
        return dirname(__DIR__) . '/migrations';
    }
}
