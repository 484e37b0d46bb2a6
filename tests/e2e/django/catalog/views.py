from django.http import JsonResponse

from .models import Product


def products(request):
    """The catalog as JSON: what the app serves."""
    return JsonResponse({"products": list(Product.objects.order_by("sku").values("sku", "name", "price_cents"))})
