from django.urls import path

from catalog.views import products

urlpatterns = [path("", products)]
