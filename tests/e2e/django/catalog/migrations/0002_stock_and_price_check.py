# Release 2 of the catalog (on Django 5.1): stock levels, a table of stock
# movements, and prices that must be positive.
from django.db import migrations, models
from django.db.models import Q


def stock_up(apps, schema_editor):
    Product = apps.get_model("catalog", "Product")
    Product.objects.update(stock=10)


class Migration(migrations.Migration):
    dependencies = [("catalog", "0001_initial")]

    operations = [
        migrations.AddField(model_name="product", name="stock", field=models.PositiveIntegerField(default=0)),
        migrations.AddConstraint(
            model_name="product",
            constraint=models.CheckConstraint(condition=Q(price_cents__gt=0), name="catalog_price_positive"),
        ),
        migrations.CreateModel(
            name="StockMovement",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("product", models.ForeignKey(on_delete=models.deletion.CASCADE, to="catalog.product")),
                ("quantity", models.IntegerField()),
                ("at", models.DateTimeField(auto_now_add=True)),
            ],
        ),
        migrations.RunPython(stock_up, migrations.RunPython.noop),
    ]
