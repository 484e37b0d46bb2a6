from django.db import models
from django.db.models import Q

from .release import RELEASE


class Product(models.Model):
    sku = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=200)
    price_cents = models.PositiveIntegerField()
    if RELEASE >= 2:
        stock = models.PositiveIntegerField(default=0)

    class Meta:
        if RELEASE >= 2:
            constraints = [models.CheckConstraint(condition=Q(price_cents__gt=0), name="catalog_price_positive")]

    def __str__(self):
        return f"{self.sku} {self.name}"


if RELEASE >= 2:

    class StockMovement(models.Model):
        product = models.ForeignKey(Product, on_delete=models.CASCADE)
        quantity = models.IntegerField()
        at = models.DateTimeField(auto_now_add=True)
