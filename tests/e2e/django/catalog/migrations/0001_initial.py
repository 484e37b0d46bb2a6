from django.db import migrations, models


def seed(apps, schema_editor):
    Product = apps.get_model("catalog", "Product")
    Product.objects.bulk_create(
        [
            Product(sku="T-1", name="Green tea", price_cents=450),
            Product(sku="T-2", name="Black tea", price_cents=390),
            Product(sku="M-1", name="Mug", price_cents=250),
        ]
    )


class Migration(migrations.Migration):
    initial = True
    dependencies = []

    operations = [
        migrations.CreateModel(
            name="Product",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("sku", models.CharField(max_length=32, unique=True)),
                ("name", models.CharField(max_length=200)),
                ("price_cents", models.PositiveIntegerField()),
            ],
        ),
        migrations.RunPython(seed, migrations.RunPython.noop),
    ]
