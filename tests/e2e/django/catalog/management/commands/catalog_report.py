"""`manage.py catalog_report`: proves the shop runs, on which Django, at which
migration, with what in its catalog (read through the ORM)."""
import django
from django.core.management.base import BaseCommand
from django.db.migrations.recorder import MigrationRecorder

from catalog.models import Product
from catalog.release import RELEASE


class Command(BaseCommand):
    help = "Report the Django version, the catalog's release and migrations, and its products"

    def handle(self, *args, **options):
        applied = MigrationRecorder.Migration.objects.filter(app="catalog").order_by("name")
        products = Product.objects.order_by("sku")
        self.stdout.write(f"Django {django.get_version()}, catalog release {RELEASE}")
        self.stdout.write("migrations: " + " ".join(m.name for m in applied))
        for product in products:
            line = f"{product.sku} {product.name} {product.price_cents}"
            if RELEASE >= 2:
                line += f" stock {product.stock}"
            self.stdout.write(line)
